"""Resolution and spectra of slice images (Du, Huang & Jacobsen 2021, Figs. 4 and 5).

Definitions:

* **erf-fit resolution** (:func:`erf_resolution`): a line profile across an edge is fitted with
  ``offset + amplitude / 2 * (1 + erf((d - c) / (sqrt(2) sigma)))``; the resolution is the FWHM of the fit's
  derivative, a Gaussian: ``2 sqrt(2 ln 2) sigma``.
* **streak energy** (:func:`streak_energy`): the fraction of the normalised power spectrum (:func:`power_spectrum`,
  Hann-windowed, sums to 1) inside a double wedge of +/- ``half_width_deg`` around a direction through the origin,
  restricted to an annulus ``r_min_frac <= r <= r_max_frac`` (r = radial frequency as a fraction of Nyquist).
  A slanted grating (the zone-plate ghost) concentrates power along its grating vector, so this fraction drops
  when the ghost is removed.
* **radial power** (:func:`radial_power`): the azimuthal mean of the normalised power spectrum in rings of radial
  frequency (cycles/pixel).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage, optimize, special

from .metrics import power_spectrum

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548...


@dataclass(frozen=True, eq=False)
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
    fwhm_m: Optional[float]
    sigma_px: float
    center_px: float
    amplitude: float
    offset: float
    profile: np.ndarray
    distance_px: np.ndarray
    fitted: np.ndarray
    residual_rms: float


def _erf_edge(d, offset, amplitude, center, sigma):
    return offset + 0.5 * amplitude * (1.0 + special.erf((d - center) / (np.sqrt(2.0) * sigma)))


def line_profile(image: np.ndarray, start: Sequence[float], end: Sequence[float],
                 n_samples: Optional[int] = None, width_px: int = 1) -> tuple[np.ndarray, np.ndarray]:
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
                   pixel_size_m: Optional[float] = None, n_samples: Optional[int] = None,
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
        popt, _ = optimize.curve_fit(_erf_edge, d, prof, p0=(lo, amp0, c0, sigma0), maxfev=5000)
    except (RuntimeError, optimize.OptimizeWarning) as err:  # pragma: no cover - depends on data
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


def streak_energy(image: np.ndarray, angle_deg: Optional[float] = None, half_width_deg: float = 5.0,
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


def radial_power(image: np.ndarray, n_bins: Optional[int] = None,
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