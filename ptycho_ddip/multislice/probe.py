"""Probe (illumination) models: Gaussian, focused (zone-plate-like annular pupil), or supplied.

Every probe is a complex (h, w) tensor sampled at the object pixel size, centred on pixel (h // 2, w // 2) (the
pixel that holds DC after ``fftshift``). Normalisation: ``photons=N`` scales the probe so that
sum |P|^2 = N, the number of photons per scan position reaching the sample (with the ``norm="ortho"`` far field this
is also the total count of a diffraction pattern of a transparent object); ``photons=None`` gives unit power,
sum |P|^2 = 1.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .propagation import Propagator

PROBE_KINDS = ("gaussian", "focused", "supplied")


def _shape(shape: Sequence[int]) -> tuple[int, int]:
    shp = tuple(int(s) for s in shape)
    if len(shp) != 2 or min(shp) < 2:
        raise ValueError(f"probe shape must be (h, w) with h, w >= 2, got {shape!r}")
    return shp


def normalize_probe(probe: torch.Tensor, photons: float | None = None) -> torch.Tensor:
    """Scale ``probe`` so that sum |P|^2 equals ``photons`` (or 1 when None)."""
    power = float(torch.sum(probe.real**2 + probe.imag**2))
    if not (power > 0 and math.isfinite(power)):
        raise ValueError(f"cannot normalise a probe of total power {power!r}")
    target = 1.0 if photons is None else float(photons)
    if not (target > 0 and math.isfinite(target)):
        raise ValueError(f"photons must be a positive number, got {photons!r}")
    return probe * math.sqrt(target / power)


def gaussian_probe(shape: Sequence[int], fwhm_m: float, pixel_size_m: float, photons: float | None = None,
                   dtype: torch.dtype = torch.complex64, device=None) -> torch.Tensor:
    """Gaussian probe whose *intensity* has full width at half maximum ``fwhm_m`` (flat phase: a waist).

    |P(r)|^2 ~ exp(-4 ln 2 r^2 / fwhm^2), r measured from pixel (h // 2, w // 2).

    Examples
    --------
    >>> p = gaussian_probe((32, 32), 80e-9, 10e-9, photons=1e6)
    >>> round(float((p.abs() ** 2).sum()))
    1000000
    """
    h, w = _shape(shape)
    if not (fwhm_m > 0 and pixel_size_m > 0):
        raise ValueError(f"fwhm_m and pixel_size_m must be > 0, got {fwhm_m!r}, {pixel_size_m!r}")
    y = (torch.arange(h, dtype=torch.float64) - h // 2) * pixel_size_m
    x = (torch.arange(w, dtype=torch.float64) - w // 2) * pixel_size_m
    r2 = y[:, None] ** 2 + x[None, :] ** 2
    amp = torch.exp(-2.0 * math.log(2.0) * r2 / fwhm_m**2)
    return normalize_probe(amp.to(dtype), photons).to(device=device)


def focused_probe(shape: Sequence[int], pixel_size_m: float, wavelength_m: float, outer_zone_width_m: float,
                  central_stop: float = 0.4, defocus_m: float = 0.0, photons: float | None = None,
                  dtype: torch.dtype = torch.complex64, device=None) -> torch.Tensor:
    """Probe of a Fresnel zone plate: the Fourier transform of an annular pupil, propagated by ``defocus_m``.

    The pupil passes spatial frequencies central_stop * f_max <= |f| <= f_max with f_max = NA / lambda =
    1 / (2 outer_zone_width_m); the in-focus field is its inverse FFT centred on pixel (h // 2, w // 2)
    (Rayleigh resolution 1.22 outer_zone_width_m), then propagated by ``defocus_m`` (positive: the sample sits
    downstream of the focus) with the angular-spectrum propagator. The defocused beam is ~ lambda |defocus| /
    outer_zone_width wide: keep that well inside the window.

    Parameters
    ----------
    shape : (h, w) window in pixels; pixel_size_m, wavelength_m : metres.
    outer_zone_width_m : outermost zone width (>= pixel size so the pupil fits below Nyquist).
    central_stop : stop diameter as a fraction of the pupil diameter, in [0, 1).
    defocus_m : distance from the focus to the first slice, metres.
    photons : normalisation (see the module docstring).

    Examples
    --------
    >>> p = focused_probe((64, 64), 10e-9, 1.0332e-10, 20e-9, defocus_m=10e-6)
    >>> p.shape, round(float((p.abs() ** 2).sum()), 6)
    (torch.Size([64, 64]), 1.0)
    """
    h, w = _shape(shape)
    if not outer_zone_width_m >= pixel_size_m:
        raise ValueError(f"outer_zone_width_m ({outer_zone_width_m!r}) must be >= pixel_size_m ({pixel_size_m!r}): "
                         f"the pupil would extend past the Nyquist frequency")
    if not 0.0 <= central_stop < 1.0:
        raise ValueError(f"central_stop must be in [0, 1), got {central_stop!r}")
    fy = torch.fft.fftfreq(h, d=pixel_size_m, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, d=pixel_size_m, dtype=torch.float64)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    f_max = 1.0 / (2.0 * outer_zone_width_m)
    pupil = ((f <= f_max) & (f >= central_stop * f_max)).to(torch.complex128)
    if not bool((pupil != 0).any()):
        raise ValueError("the pupil holds no frequency sample: enlarge the window or the outer zone width")
    field = torch.fft.fftshift(torch.fft.ifft2(pupil))
    if defocus_m != 0.0:
        field = Propagator((h, w), defocus_m, wavelength_m, pixel_size_m, "exact").forward(field)
    return normalize_probe(field, photons).to(dtype=dtype, device=device)


def supplied_probe(probe, shape: Sequence[int] | None = None, photons: float | None = None,
                   dtype: torch.dtype = torch.complex64, device=None) -> torch.Tensor:
    """A user-supplied probe as a complex tensor; checked for shape (when given) and finiteness.

    ``photons=None`` keeps the supplied scale (it is not renormalised), a number rescales it.
    """
    p = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe)
    if not p.is_complex():
        p = p.to(torch.complex128)
    if p.ndim != 2:
        raise ValueError(f"a probe must be 2-D (h, w), got shape {tuple(p.shape)}")
    if shape is not None and tuple(p.shape) != tuple(int(s) for s in shape):
        raise ValueError(f"the probe has shape {tuple(p.shape)} but the detector is {tuple(shape)}: supply a probe "
                         f"of the detector's shape")
    if not bool(torch.isfinite(torch.view_as_real(p)).all()):
        raise ValueError("the supplied probe contains NaN or inf")
    if photons is not None:
        p = normalize_probe(p, photons)
    return p.to(dtype=dtype, device=device)


def probe_photons(probe) -> float:
    """Total power sum |P|^2 of a probe (photons per position for a normalised probe)."""
    p = torch.as_tensor(probe)
    return float(torch.sum(p.real**2 + p.imag**2)) if p.is_complex() else float(torch.sum(p**2))
