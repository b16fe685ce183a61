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
    (:mod:`ptycho_ddip.separation.select`; docs/separation_stability.md sections 11 and 12).

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


# ------------------------------------------------------------------------------------- resolution and spectra
#
# Definitions used by the functions below (Du, Huang & Jacobsen 2021, Figs. 4 and 5):
#
# * **erf-fit resolution** (:func:`erf_resolution`): a line profile across an edge is fitted with
#   ``offset + amplitude / 2 * (1 + erf((d - c) / (sqrt(2) sigma)))``; the resolution is the FWHM of the fit's
#   derivative, a Gaussian: ``2 sqrt(2 ln 2) sigma``.
# * **streak energy** (:func:`streak_energy`): the fraction of the normalised power spectrum (:func:`power_spectrum`,
#   Hann-windowed, sums to 1) inside a double wedge of +/- ``half_width_deg`` around a direction through the origin,
#   restricted to an annulus ``r_min_frac <= r <= r_max_frac`` (r = radial frequency as a fraction of Nyquist).
#   A slanted grating (the zone-plate ghost) concentrates power along its grating vector, so this fraction drops
#   when the ghost is removed.
# * **radial power** (:func:`radial_power`): the azimuthal mean of the normalised power spectrum in rings of radial
#   frequency (cycles/pixel).

from dataclasses import dataclass as _dataclass
from typing import Optional as _Optional

from scipy import optimize as _optimize
from scipy import special as _special

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548...


@_dataclass(frozen=True, eq=False)
class ErfFit:
    """Result of :func:`erf_resolution`.

    Attributes
    ----------
    fwhm_px : FWHM of the fitted edge's derivative (a Gaussian), pixels: ``2 sqrt(2 ln 2) sigma_px``.
    fwhm_m : the same in metres, or None when no pixel size was given.
    sigma_px : standard deviation of the Gaussian edge-spread derivative, pixels (always > 0).
    center_px : edge position, pixels of distance from ``start`` along the line.
    amplitude : signed step height (image units): > 0 for a rising edge, < 0 for a falling one.
    offset : level before the edge (image units).
    profile : (n,) sampled line profile (image units).
    distance_px : (n,) distance of each sample from ``start``, pixels.
    fitted : (n,) the fitted model at the samples.
    residual_rms : root-mean-square of ``profile - fitted`` (image units).
    """

    fwhm_px: float
    fwhm_m: _Optional[float]
    sigma_px: float
    center_px: float
    amplitude: float
    offset: float
    profile: np.ndarray
    distance_px: np.ndarray
    fitted: np.ndarray
    residual_rms: float


def _erf_edge(d, offset, amplitude, center, sigma):
    return offset + 0.5 * amplitude * (1.0 + _special.erf((d - center) / (np.sqrt(2.0) * sigma)))


def line_profile(image: np.ndarray, start: Sequence[float], end: Sequence[float],
                 n_samples: _Optional[int] = None, width_px: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bilinearly interpolated line profile of an image.

    Parameters
    ----------
    image : (H, W) image.
    start, end : (y, x) end points of the line, pixels (row, column; sub-pixel values allowed).
    n_samples : number of samples along the line; default ``ceil(length) + 1`` (about one per pixel).
    width_px : number of parallel lines, one pixel apart perpendicular to the line, that are averaged
        (1 = a single line).

    Returns
    -------
    distance_px : (n,) distance of each sample from ``start``, pixels.
    profile : (n,) the profile, image units.

    Examples
    --------
    >>> im = np.tile(np.arange(8.0), (8, 1))
    >>> d, p = line_profile(im, (3, 1), (3, 5))
    >>> p.tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    im = np.asarray(image, dtype=np.float64)
    if im.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {im.shape}")
    p0, p1 = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    length = float(np.hypot(*(p1 - p0)))
    if length <= 0:
        raise ValueError("start and end of the line coincide")
    n = int(np.ceil(length)) + 1 if n_samples is None else int(n_samples)
    width_px = int(width_px)
    if n < 2 or width_px < 1:
        raise ValueError(f"need n_samples >= 2 and width_px >= 1, got {n} and {width_px}")
    t = np.linspace(0.0, 1.0, n)
    unit = (p1 - p0) / length
    normal = np.array([-unit[1], unit[0]])
    offsets = np.arange(width_px) - 0.5 * (width_px - 1)
    prof = np.zeros(n)
    for o in offsets:
        pts = p0[:, None] + np.outer(p1 - p0, t) + o * normal[:, None]
        prof += ndimage.map_coordinates(im, pts, order=1, mode="nearest")
    return t * length, prof / width_px


def erf_resolution(image: np.ndarray, start: Sequence[float], end: Sequence[float],
                   pixel_size_m: _Optional[float] = None, n_samples: _Optional[int] = None,
                   width_px: int = 1) -> ErfFit:
    """Edge resolution from an error-function fit of a line profile (the paper's Fig. 5 measure).

    The profile from ``start`` to ``end`` (see :func:`line_profile`) is fitted by least squares
    (``scipy.optimize.curve_fit``) with ``offset + amplitude / 2 * (1 + erf((d - c) / (sqrt(2) sigma)))``; rising
    and falling edges both work (the amplitude is signed). The resolution is the FWHM of the fit's derivative,
    ``2 sqrt(2 ln 2) sigma`` (about 2.355 sigma). The line should cross a single edge with some flat level on both
    sides (a few sigma), and be perpendicular to the edge: a line at angle phi to the edge's normal measures
    ``sigma / cos(phi)``, and averaging parallel lines (``width_px`` > 1) across an oblique edge blurs it further.
    Bilinear interpolation adds at most about 1/12 px^2 to sigma^2 (under 1 % for sigma > 2 px).

    Parameters
    ----------
    image : (H, W) image, any units.
    start, end : (y, x) end points of the line, pixels.
    pixel_size_m : pixel size in metres; gives ``fwhm_m`` (None otherwise).
    n_samples : samples along the line; default about one per pixel.
    width_px : number of parallel lines (1 px apart) averaged to lower the noise.

    Returns
    -------
    ErfFit

    Raises
    ------
    RuntimeError if the fit does not converge.

    Examples
    --------
    >>> from scipy import ndimage
    >>> step = np.zeros((64, 64)); step[:, 32:] = 1.0
    >>> fit = erf_resolution(ndimage.gaussian_filter(step, 2.0), (32, 10), (32, 54), pixel_size_m=5e-9)
    >>> print(f"{fit.sigma_px:.2f} px, FWHM {fit.fwhm_px:.2f} px = {fit.fwhm_m * 1e9:.1f} nm")
    1.98 px, FWHM 4.66 px = 23.3 nm
    """
    d, prof = line_profile(image, start, end, n_samples=n_samples, width_px=width_px)
    n = d.size
    if n < 5:
        raise ValueError(f"need at least 5 samples for a 4-parameter fit, got {n}")
    k = max(1, n // 10)
    lo, hi = float(prof[:k].mean()), float(prof[-k:].mean())
    amp0 = hi - lo
    step = d[1] - d[0]
    grad = np.gradient(ndimage.uniform_filter1d(prof, 3, mode="nearest"), step)
    i = int(np.argmax(grad * np.sign(amp0))) if amp0 != 0 else n // 2
    c0 = float(d[i])
    peak = abs(float(grad[i]))
    sigma0 = abs(amp0) / (peak * np.sqrt(2 * np.pi)) if peak > 0 else d[-1] / 10
    sigma0 = float(np.clip(sigma0, 0.5 * step, 0.5 * d[-1]))
    try:
        popt, _ = _optimize.curve_fit(_erf_edge, d, prof, p0=(lo, amp0, c0, sigma0), maxfev=5000)
    except (RuntimeError, _optimize.OptimizeWarning) as err:  # pragma: no cover - depends on data
        raise RuntimeError(f"erf fit did not converge: {err}") from err
    offset, amplitude, center, sigma = (float(v) for v in popt)
    sigma = abs(sigma)
    fitted = _erf_edge(d, offset, amplitude, center, sigma)
    fwhm = _FWHM_PER_SIGMA * sigma
    return ErfFit(fwhm_px=fwhm, fwhm_m=None if pixel_size_m is None else fwhm * float(pixel_size_m),
                  sigma_px=sigma, center_px=center, amplitude=amplitude, offset=offset, profile=prof,
                  distance_px=d, fitted=fitted, residual_rms=float(np.sqrt(np.mean((prof - fitted) ** 2))))


def _frequency_grid(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(fy, fx) in cycles/pixel on the fftshift-ed grid of :func:`power_spectrum`."""
    fy = np.fft.fftshift(np.fft.fftfreq(int(shape[0])))
    fx = np.fft.fftshift(np.fft.fftfreq(int(shape[1])))
    return np.meshgrid(fy, fx, indexing="ij")


def _polar(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency as a fraction of Nyquist (per axis) and direction angle in [0, 180) degrees."""
    fy, fx = _frequency_grid(shape)
    r = np.hypot(fy / 0.5, fx / 0.5)
    ang = np.rad2deg(np.arctan2(fy, fx)) % 180.0
    return r, ang


def streak_angle(image: np.ndarray, half_width_deg: float = 5.0, r_min_frac: float = 0.1,
                 r_max_frac: float = 0.9) -> float:
    """Direction (degrees, in [0, 180)) of the strongest streak of the normalised power spectrum.

    The angle is that of the frequency vector, ``atan2(f_y, f_x)`` with f_y along rows (downwards in an
    ``imshow``) and f_x along columns; a grating whose lines run at angle phi in the image has its streak at
    phi + 90 degrees. The power in the annulus is histogrammed by direction in 0.5-degree bins (folded to [0, 180),
    since the spectrum of a real image is symmetric) and smoothed circularly with a Gaussian of standard deviation
    ``half_width_deg``; its peak is then refined to the power-weighted axial mean direction inside the wedge of
    +/- ``half_width_deg`` around it.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> t = np.deg2rad(37.0)  # wave vector at 37 degrees
    >>> round(streak_angle(np.cos(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / 5)), 1)
    37.0
    """
    r, ang = _polar(np.shape(image))
    p = power_spectrum(image)
    sel = (r >= r_min_frac) & (r <= r_max_frac)
    step = 0.5
    nb = int(round(180.0 / step))
    hist = np.bincount(np.rint(ang[sel] / step).astype(int) % nb, weights=p[sel], minlength=nb)
    smoothed = ndimage.gaussian_filter1d(hist, max(half_width_deg, step) / step, mode="wrap")
    angle = float(np.argmax(smoothed) * step)
    for _ in range(3):  # refine: power-weighted axial mean (doubled angles) inside the best wedge
        w = p[sel] * (_angle_distance(ang[sel], angle) <= half_width_deg)
        two = np.deg2rad(2.0 * ang[sel])
        if w.sum() <= 0:
            break
        angle = float(np.rad2deg(np.arctan2((w * np.sin(two)).sum(), (w * np.cos(two)).sum())) / 2.0) % 180.0
    return angle if angle < 180.0 else 0.0  # -1e-15 % 180 rounds to 180.0


def _angle_distance(a: np.ndarray, b: float) -> np.ndarray:
    """Distance in degrees between axial directions (modulo 180), in [0, 90]."""
    return np.abs((np.asarray(a) - b + 90.0) % 180.0 - 90.0)


def streak_energy(image: np.ndarray, angle_deg: _Optional[float] = None, half_width_deg: float = 5.0,
                  r_min_frac: float = 0.1, r_max_frac: float = 0.9) -> float:
    """Fraction of the normalised power spectrum in a double wedge around a streak direction.

    Definition: with P the Hann-windowed power spectrum normalised to sum 1 (:func:`power_spectrum`), r the radial
    frequency as a fraction of Nyquist (``hypot(f_y / 0.5, f_x / 0.5)``) and theta the direction
    ``atan2(f_y, f_x)`` folded to [0, 180)::

        E = sum of P over { r_min_frac <= r <= r_max_frac  and  |theta - angle_deg| <= half_width_deg (mod 180) }

    The wedge covers both sides of the origin. E is in [0, 1], dimensionless and independent of the image's scale
    and offset. A slanted grating (e.g. a zone-plate ghost on slice 2) concentrates its power along its grating
    vector, so E drops when such a ghost is suppressed. The annulus leaves out the DC region (dominated by large
    features and the window) and the corners beyond Nyquist. The Hann window widens a spectral line by about one
    frequency sample (1 / N cycles/pixel) sideways, i.e. by atan(1 / k) at k samples from the origin: the wedge
    holds a line's power only where atan(1 / k) < ``half_width_deg`` (k > 11 samples for 5 degrees).

    Parameters
    ----------
    image : (H, W) image, any units.
    angle_deg : streak direction in degrees (convention of :func:`streak_angle`); None estimates it from this
        image with :func:`streak_angle`. To compare images (e.g. before and after a separation), pass the same angle.
    half_width_deg : half opening of the wedge, degrees.
    r_min_frac, r_max_frac : annulus, fractions of Nyquist (0.5 cycles/pixel).

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> grating = np.cos(2 * np.pi * yy / 4)  # lines along x, streak along f_y (90 degrees)
    >>> streak_energy(grating, 90.0) > 0.9 > streak_energy(grating, 0.0)
    True
    """
    if not 0 <= r_min_frac < r_max_frac:
        raise ValueError(f"need 0 <= r_min_frac < r_max_frac, got {r_min_frac}, {r_max_frac}")
    if angle_deg is None:
        angle_deg = streak_angle(image, half_width_deg, r_min_frac, r_max_frac)
    r, ang = _polar(np.shape(image))
    p = power_spectrum(image)
    sel = (r >= r_min_frac) & (r <= r_max_frac) & (_angle_distance(ang, float(angle_deg)) <= half_width_deg)
    return float(p[sel].sum())


def radial_power(image: np.ndarray, n_bins: _Optional[int] = None,
                 return_counts: bool = False) -> tuple[np.ndarray, ...]:
    """Azimuthally averaged normalised power spectrum.

    Rings of radial frequency ``hypot(f_y, f_x)`` (cycles/pixel) are centred on ``k * width``, k = 0..n_bins-1;
    the default width is one frequency sample, ``1 / min(H, W)``, and ``n_bins`` covers every pixel of the spectrum
    (up to the corners, beyond Nyquist). Given ``n_bins``, the width is chosen so the rings still cover every pixel.
    ``power`` is the mean of :func:`power_spectrum` over each ring (0 for an empty ring), so
    ``(power * counts).sum() == 1`` for a non-constant image.

    Parameters
    ----------
    image : (H, W) image.
    n_bins : number of rings (>= 2); default ``ceil(r_max * min(H, W) + 0.5)``.
    return_counts : also return the number of pixels in each ring.

    Returns
    -------
    freq : (n_bins,) ring centres, cycles/pixel.
    power : (n_bins,) azimuthal mean of the normalised power spectrum.
    counts : (n_bins,) int, only with ``return_counts``.

    Examples
    --------
    >>> xx = np.mgrid[:64, :64][1]
    >>> f, p = radial_power(np.cos(2 * np.pi * xx / 8))
    >>> float(f[np.argmax(p)])
    0.125
    """
    shape = np.shape(image)
    fy, fx = _frequency_grid(shape)
    r = np.hypot(fy, fx)
    r_max = float(r.max())
    if n_bins is None:
        width = 1.0 / min(shape)
        n_bins = int(np.ceil(r_max / width + 0.5))
    else:
        n_bins = int(n_bins)
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        width = r_max / (n_bins - 0.5) * (1 + 1e-12)
    idx = np.minimum(np.floor(r / width + 0.5).astype(int), n_bins - 1).ravel()
    p = power_spectrum(image).ravel()
    counts = np.bincount(idx, minlength=n_bins)
    sums = np.bincount(idx, weights=p, minlength=n_bins)
    power = np.divide(sums, counts, out=np.zeros(n_bins), where=counts > 0)
    freq = np.arange(n_bins) * width
    return (freq, power, counts) if return_counts else (freq, power)
