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
    >>> round(ghost_to_signal(2 * s + 0.5 * g, s, g), 6)
    0.25
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
