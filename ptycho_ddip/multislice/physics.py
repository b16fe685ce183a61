"""Basic X-ray optics quantities: wavelength, wavenumber, depth of field, Fresnel number.

All functions take and return SI units (metres, radians) and photon energies in electron-volts. They accept Python
floats or numpy arrays and never touch global state.

Examples
--------
>>> round(wavelength_m(12000.0) * 1e10, 5)   # 12 keV -> 1.03320 Angstrom
1.0332
>>> round(depth_of_field_m(10e-9, wavelength_m(12000.0)) * 1e6, 3)   # paper eq. 1, dr = 10 nm
5.226
"""
from __future__ import annotations

import math

import numpy as np

#: Planck constant times speed of light, in eV * m (CODATA 2018: h, c and e are exact, hc/e = 1.239 841 984... um eV).
HC_EV_M = 1.239841984332e-6

#: Prefactor of the depth of field in Du, Huang & Jacobsen (2021) eq. 1: DOF = 5.4 dr^2 / lambda.
DOF_FACTOR = 5.4


def _positive(name: str, value):
    """``value`` as a float (scalar input) or float64 array, after checking it is finite and > 0."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(arr) if arr.ndim == 0 else arr


def wavelength_m(energy_ev):
    """Vacuum wavelength in metres of a photon of energy ``energy_ev`` (eV): lambda = h c / E.

    Examples
    --------
    >>> f"{wavelength_m(8047.8):.4e}"    # Cu K-alpha
    '1.5406e-10'
    """
    return HC_EV_M / _positive("energy_ev", energy_ev)


def energy_ev(wavelength_m_):
    """Photon energy in eV for a vacuum wavelength in metres (inverse of :func:`wavelength_m`)."""
    return HC_EV_M / _positive("wavelength_m", wavelength_m_)


def wavenumber_per_m(energy_ev_):
    """Vacuum wavenumber k = 2 pi / lambda in rad/m for a photon energy in eV."""
    return 2.0 * math.pi / wavelength_m(energy_ev_)


def depth_of_field_m(resolution_m, wavelength_m_):
    """Depth of field DOF = 5.4 dr^2 / lambda (Du, Huang & Jacobsen 2021, eq. 1), in metres.

    Parameters
    ----------
    resolution_m : transverse resolution dr in metres (for a ptychography dataset, usually the pixel size
        lambda z / (N p) of the reconstruction).
    wavelength_m_ : wavelength in metres.

    Examples
    --------
    >>> f"{depth_of_field_m(8.7e-9, wavelength_m(12000.0)):.2e}"   # ZP/NiO data of the paper: ~3.9 um
    '3.96e-06'
    """
    return DOF_FACTOR * _positive("resolution_m", resolution_m) ** 2 / _positive("wavelength_m", wavelength_m_)


def fresnel_number(size_m, distance_m, wavelength_m_):
    """Fresnel number N_F = a^2 / (lambda z) for a feature (or aperture half-width) of size ``a`` at distance ``z``.

    N_F >> 1: near field (geometric shadow); N_F ~ 1: Fresnel regime; N_F << 1: Fraunhofer (far field).
    For a propagation step on a grid of pixel size p, ``fresnel_number(p, z, lambda)`` < 1 means that one step
    blurs a pixel by more than its width.
    """
    a = _positive("size_m", size_m)
    return a**2 / (_positive("distance_m", distance_m) * _positive("wavelength_m", wavelength_m_))


def slice_spacings_m(slice_pos_m) -> np.ndarray:
    """Gaps between consecutive slices (``np.diff``), metres; raises if the positions are not strictly increasing."""
    pos = np.asarray(slice_pos_m, dtype=np.float64).reshape(-1)
    if pos.size < 1 or not np.all(np.isfinite(pos)):
        raise ValueError(f"slice positions must be a non-empty list of finite numbers (metres), got {slice_pos_m!r}")
    gaps = np.diff(pos)
    if np.any(gaps <= 0):
        raise ValueError(f"slice positions must be strictly increasing (metres), got {pos.tolist()}")
    return gaps
