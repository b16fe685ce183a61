"""Quality metrics of a separation, with and without ground truth.

Definitions (all images are 2-D float arrays of the same shape; units do not matter):

* **ghost-to-signal ratio** (:func:`ghost_to_signal`): least-squares regression of an output slice on a constant, its
  own true slice s, and the other slice's ghost g (one image, or a stack of band images when the ghost's filter is
  unknown, see :func:`ghost_bands`): ``out ~ c + a s + sum_k b_k g_k``. The ratio is
  ``std(sum_k b_k g_k) / std(a s)``: the amplitude of the ghost component relative to the signal component. It is 0
  for a clean slice and does not change with the output's scale or offset.
* **correlation** (:func:`correlation`): Pearson correlation with the true slice.
* **PSNR / SSIM** (:func:`psnr`, :func:`ssim`): after a linear intensity match of the output to the truth
  (:func:`match_intensity`); the data range is the truth's max - min; SSIM uses a Gaussian window (sigma 1.5 px) with
  the usual constants K1 = 0.01, K2 = 0.03.
* without ground truth: **gradient correlation** (:func:`gradient_correlation`), the mean over 5 scales and both
  directions of |Pearson correlation| between the forward differences of two images (0 = no shared edges, the
  quantity the exclusion loss drives down); **normalised power spectrum** (:func:`power_spectrum`).
* without ground truth: **crosstalk estimate** (:func:`crosstalk_estimate`), a ghost-to-signal ratio in which the
  other slices' *inputs*, band-filtered to the band of the ghost the slice receives, stand in for the unknown ghost.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).ravel()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two images (0 if either is constant).

    >>> correlation(np.arange(4.0), 2 * np.arange(4.0) + 1)
    1.0
    """
    x, y = _flat(a), _flat(b)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float(round((x * y).sum() / d, 15)) if d > 0 else 0.0


def ghost_bands(other: np.ndarray, sigmas: Sequence[float] = (1.0, 3.0)) -> np.ndarray:
    """Band decomposition of the other slice, for ghosts of unknown filtering: low-pass G_{s_last}, band-passes
    G_{s_k} - G_{s_k+1}, and high-pass x - G_{s_0}. Returns (len(sigmas) + 1, H, W); they sum to ``other``."""
    other = np.asarray(other, dtype=np.float64)
    blurred = [other] + [ndimage.gaussian_filter(other, s) for s in sigmas]
    return np.stack([blurred[k] - blurred[k + 1] for k in range(len(sigmas))] + [blurred[-1]])


def ghost_to_signal(output: np.ndarray, truth: np.ndarray, ghost: np.ndarray) -> float:
    """Ghost-to-signal amplitude ratio of ``output`` given its true slice and the ghost image(s).

    Parameters
    ----------
    output : (H, W) the image to score (an input or a separated slice).
    truth : (H, W) its true slice.
    ghost : (H, W) the ghost image (e.g. the filtered other slice), or (K, H, W) band images of the other slice.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s, g = rng.random((2, 32, 32))
    >>> r = ghost_to_signal(2 * s + 0.5 * g, s, g)  # = 0.5 std(g) / (2 std(s))
    >>> bool(abs(r - 0.25 * g.std() / s.std()) < 1e-9)
    True
    """
    ghost = np.asarray(ghost, dtype=np.float64)
    ghost = ghost[None] if ghost.ndim == 2 else ghost
    cols = [np.ones(np.size(truth)), _flat(truth)] + [_flat(g) for g in ghost]
    x = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(x, _flat(output), rcond=None)
    signal = coef[1] * x[:, 1]
    ghost_part = x[:, 2:] @ coef[2:]
    s = signal.std()
    return float(ghost_part.std() / s) if s > 0 else float("inf")


def explained_ratio(output: np.ndarray, regressors: Sequence[np.ndarray],
                    nuisance: Sequence[np.ndarray] = ()) -> float:
    """std of the part of ``output`` that ``regressors`` explain over std of the residual: least squares on a
    constant, ``regressors`` and ``nuisance`` together, of which only the regressors' part counts as explained (the
    nuisance regressors take up what they can and are otherwise ignored)."""
    y = _flat(output)
    k = len(regressors)
    x = np.stack([np.ones(y.size)] + [_flat(r) for r in list(regressors) + list(nuisance)], axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    fit = x[:, 1 : 1 + k] @ coef[1 : 1 + k]
    rest = y - x @ coef
    s = rest.std()
    return float(fit.std() / s) if s > 0 else float("inf")


def crosstalk_regressors(i: int, outputs: np.ndarray, inputs: np.ndarray, ghost_kinds: Sequence[str],
                         low_sigma: float = 3.0, high_sigmas: Sequence[float] = (1.0, 3.0)) -> list:
    """The band images that stand in for slice i's ghost in :func:`crosstalk_estimate`; they depend on the other
    slices only (their inputs, or their outputs when of slice i's ghost kind)."""
    return [r for j in range(len(ghost_kinds)) if j != i
            for r in _bands(inputs[j] if ghost_kinds[j] != ghost_kinds[i] else outputs[j], ghost_kinds[i],
                            low_sigma, high_sigmas)]


def crosstalk_nuisance(output: np.ndarray, kind: str, low_sigma: float = 3.0,
                       high_sigmas: Sequence[float] = (1.0, 3.0)) -> list:
    """Nuisance regressors of the partial crosstalk estimate of an output that receives a ``kind`` ghost: for a
    high-pass ghost, the same high bands as :func:`crosstalk_regressors` of ``G_low_sigma * output`` (the output's
    own low-pass, which stands in for the low-pass copy of this slice inside the other slices' inputs); none for a
    low-pass ghost."""
    if kind != "highpass":
        return []
    return _bands(ndimage.gaussian_filter(np.asarray(output, dtype=np.float64), low_sigma), kind, low_sigma,
                  high_sigmas)


def _bands(image: np.ndarray, kind: str, low_sigma: float, high_sigmas: Sequence[float]) -> list:
    """``[G_low * image]`` for a low-pass ghost; ``[image - G_s0 * image, G_s0 * image - G_s1 * image]`` for a
    high-pass one (Gaussian widths in pixels)."""
    if kind == "lowpass":
        return [ndimage.gaussian_filter(image, low_sigma)]
    s0, s1 = high_sigmas
    g0, g1 = ndimage.gaussian_filter(image, s0), ndimage.gaussian_filter(image, s1)
    return [image - g0, g0 - g1]


def crosstalk_estimate(outputs: np.ndarray, inputs: np.ndarray, ghost_kinds: Sequence[str] | None = None,
                       low_sigma: float = 3.0, high_sigmas: Sequence[float] = (1.0, 3.0),
                       partial: bool = False) -> list:
    """Truth-free estimate of each output slice's ghost-to-signal ratio (no ground truth needed).

    A slice that receives a low-pass ghost is regressed on the low-pass ``G_low_sigma * I_j`` of the *input* of every
    other slice j; a slice that receives a high-pass ghost on the high bands ``I_j - G_{s0} * I_j`` and
    ``G_{s0} * I_j - G_{s1} * I_j`` (``high_sigmas``, pixels). The estimate is std(fitted part) / std(residual), the
    form of :func:`ghost_to_signal` with the residual standing in for the signal. Why the inputs: the ghost slice j
    leaves on slice i is a filtered copy of j's true slice, which the input I_j holds from the start; and when the
    ghost kinds differ, I_j's own contamination by slice i lies in the other band (I_1 = s_1 + LP(s_2) has little
    high-pass of s_2, I_2 = s_2 + HP(s_1) little low-pass of s_1), so the regression sees the residual ghost rather
    than the slice's own signal. For two slices of the same ghost kind that argument fails, and the other slice's
    *output* is used instead of its input.

    The estimate is biased: independent random textures correlate a little by chance (about 0.02-0.05 on 96 x 96
    images) and part of an input's band is the slice's own signal, so it is used to *rank* results of the same
    images (:func:`ptycho_ddip.separation.sweep.choose_gamma`), not as an absolute number.

    ``partial=True`` removes most of the second bias for slices that receive a high-pass ghost. I_j holds a low-pass
    copy of slice i, whose high bands correlate with slice i's own signal: about 0.2 for a perfectly clean 96 x 96
    slice 2 of the au-nio blends. A small ghost can have the opposite sign to that part, so along one fit the plain
    estimate can *fall* while the ghost grows (rank correlation with the true ratio down to -0.99 on au-nio
    trajectories). The partial estimate adds the same bands of the output's own low-pass (``G_low_sigma * y_i``,
    :func:`crosstalk_nuisance`) as nuisance regressors and counts only the input bands' part. Over 58 saved
    kernel trajectories it ranks iterates backwards less often (negative rank correlation with the true ratio on 9
    against 15). ``select="crosstalk"`` ranks the kept iterates by it and by the plain estimate together
    (:mod:`ptycho_ddip.separation.select`; docs/method.md, history).

    Parameters
    ----------
    outputs : (N, H, W) separated slices (any units).
    inputs : (N, H, W) the contaminated input slices.
    ghost_kinds : per slice ``"lowpass"`` / ``"highpass"``; None = slice 1 low-pass, the others high-pass.
    low_sigma, high_sigmas : Gaussian widths in pixels of the bands above.
    partial : add the nuisance regressors of :func:`crosstalk_nuisance` (see above).

    Returns
    -------
    list of N floats, one per slice.
    """
    from .model import default_ghost_kinds

    outputs, inputs = np.asarray(outputs, dtype=np.float64), np.asarray(inputs, dtype=np.float64)
    if outputs.shape != inputs.shape or outputs.ndim != 3:
        raise ValueError(f"outputs {outputs.shape} and inputs {inputs.shape} must be the same (N, H, W)")
    n = outputs.shape[0]
    kinds = tuple(ghost_kinds) if ghost_kinds is not None else default_ghost_kinds(n)
    return [explained_ratio(outputs[i], crosstalk_regressors(i, outputs, inputs, kinds, low_sigma, high_sigmas),
                            crosstalk_nuisance(outputs[i], kinds[i], low_sigma, high_sigmas) if partial else ())
            for i in range(n)]


def match_intensity(output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``a * output + b`` with (a, b) the least-squares fit to ``truth``."""
    o = np.asarray(output, dtype=np.float64)
    x = np.stack([_flat(o), np.ones(o.size)], axis=1)
    (a, b), *_ = np.linalg.lstsq(x, _flat(truth), rcond=None)
    return a * o + b


def psnr(output: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB after a linear intensity match; peak = truth's max - min."""
    t = np.asarray(truth, dtype=np.float64)
    mse = np.mean((match_intensity(output, t) - t) ** 2)
    rng = t.max() - t.min()
    return float(10 * np.log10(rng**2 / mse)) if mse > 0 else float("inf")


def ssim(output: np.ndarray, truth: np.ndarray, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window) after a linear intensity match."""
    t = np.asarray(truth, dtype=np.float64)
    o = match_intensity(output, t)
    rng = t.max() - t.min()
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    g = lambda a: ndimage.gaussian_filter(a, sigma, mode="reflect")  # noqa: E731
    mo, mt = g(o), g(t)
    vo, vt, cov = g(o * o) - mo**2, g(t * t) - mt**2, g(o * t) - mo * mt
    s = ((2 * mo * mt + c1) * (2 * cov + c2)) / ((mo**2 + mt**2 + c1) * (vo + vt + c2))
    return float(s.mean())


def gradient_correlation(a: np.ndarray, b: np.ndarray, scales: int = 5) -> float:
    """Mean |Pearson correlation| of the x and y forward differences of two images over ``scales`` 2x2-pooled
    scales; needs no ground truth."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    vals = []
    for _ in range(scales):
        for axis in (0, 1):
            if a.shape[axis] < 3:
                continue
            vals.append(abs(correlation(np.diff(a, axis=axis), np.diff(b, axis=axis))))
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        if h < 4 or w < 4:
            break
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.mean(vals))


def power_spectrum(image: np.ndarray, window: bool = True) -> np.ndarray:
    """Normalised power spectrum (sums to 1), DC at the centre; a Hann window suppresses edge streaks."""
    im = np.asarray(image, dtype=np.float64)
    im = im - im.mean()
    if window:
        im = im * np.outer(np.hanning(im.shape[0]), np.hanning(im.shape[1]))
    p = np.abs(np.fft.fftshift(np.fft.fft2(im))) ** 2
    total = p.sum()
    return p / total if total > 0 else p


def separation_metrics(outputs: np.ndarray, truth: np.ndarray, ghosts: np.ndarray | None = None) -> list:
    """Per-slice metrics of N output images against N true slices.

    ``ghosts[i]`` is the ghost image on slice i (e.g. ``Blend.ghosts``); when None, the band decomposition
    :func:`ghost_bands` of the other slices' truth is used. Returns a list of dicts with keys ``ghost_to_signal``,
    ``correlation``, ``psnr``, ``ssim``.
    """
    outputs, truth = np.asarray(outputs, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if outputs.shape != truth.shape:
        raise ValueError(f"outputs {outputs.shape} and truth {truth.shape} differ in shape")
    rows = []
    n = outputs.shape[0]
    for i in range(n):
        if ghosts is not None:
            g = ghosts[i]
        else:
            g = np.concatenate([ghost_bands(truth[j]) for j in range(n) if j != i])
        rows.append({"ghost_to_signal": ghost_to_signal(outputs[i], truth[i], g),
                     "correlation": correlation(outputs[i], truth[i]),
                     "psnr": psnr(outputs[i], truth[i]), "ssim": ssim(outputs[i], truth[i])})
    return rows

