"""Refractive-index decrements (delta, beta) of Au, NiO and Ni from 5 to 30 keV, and slice transmissions.

n = 1 - delta + i beta. The table holds values computed from the Henke et al. (1993) atomic scattering factors
(f1, f2 as tabulated by CXRO; evaluated with the ``periodictable`` package's ``xsf.index_of_refraction``), for the
bulk densities Au 19.32, NiO 6.67 and Ni 8.908 g/cm^3. They agree with the CXRO web calculator to the 3-4 digits
shown, but treat them as **approximate** (Henke tables are ~1-10 % off near absorption edges and ignore fine
structure; real films differ in density). Absorption edges in the range (Ni K 8.333 keV; Au L3 11.919, L2 13.734,
L1 14.353 keV) are represented by a pair of points 1 eV below and 1 eV above; values within that 2 eV gap are
interpolated and not meaningful. Between table points delta and beta are interpolated linearly in log-log space
(delta ~ E^-2 and beta ~ E^-3 away from edges, so this is accurate to ~1 % between points).

The transmission of a slice of thickness t follows DESIGN.md section 2 (Goodman sign, waves ~ exp(+i k z)):
O = exp(i k (-delta) t) exp(-k beta t), k = 2 pi / lambda.
"""
from __future__ import annotations

import math

import numpy as np

from .physics import wavenumber_per_m

#: (energy_eV, delta, beta) per material; see the module docstring for the source and accuracy.
TABLE = {
    "Au": (
        (5000, 1.2143e-04, 2.6233e-05), (6000, 8.5307e-05, 1.4001e-05), (7000, 6.2681e-05, 8.0451e-06),
        (8000, 4.7730e-05, 4.9592e-06), (8332, 4.3891e-05, 4.2787e-06), (8334, 4.3870e-05, 4.2750e-06),
        (9000, 3.7389e-05, 3.2339e-06), (10000, 2.9912e-05, 2.2073e-06), (11000, 2.4210e-05, 1.5648e-06),
        (11918, 1.5586e-05, 1.1735e-06), (11920, 1.5601e-05, 2.9251e-06), (12000, 1.8399e-05, 2.8532e-06),
        (13000, 1.7303e-05, 2.1183e-06), (13733, 1.3776e-05, 1.7272e-06), (13735, 1.3775e-05, 2.4079e-06),
        (14352, 1.3731e-05, 2.0496e-06), (14354, 1.3707e-05, 2.3547e-06), (15000, 1.3479e-05, 2.0209e-06),
        (17500, 1.0264e-05, 1.1736e-06), (20000, 7.9516e-06, 7.2650e-07), (25000, 5.1225e-06, 3.2177e-07),
        (30000, 3.5555e-06, 1.6406e-07),
    ),
    "NiO": (
        (5000, 5.2432e-05, 1.9497e-06), (6000, 3.6018e-05, 9.8270e-07), (7000, 2.6077e-05, 5.4695e-07),
        (8000, 1.9227e-05, 3.2682e-07), (8332, 1.3318e-05, 2.7892e-07), (8334, 1.3252e-05, 2.0656e-06),
        (9000, 1.5720e-05, 1.5802e-06), (10000, 1.3114e-05, 1.0872e-06), (11000, 1.0975e-05, 7.7062e-07),
        (12000, 9.2842e-06, 5.6048e-07), (13000, 7.9413e-06, 4.1691e-07), (15000, 5.9862e-06, 2.4410e-07),
        (17500, 4.4028e-06, 1.3613e-07), (20000, 3.3700e-06, 8.1662e-08), (25000, 2.1533e-06, 3.4468e-08),
        (30000, 1.4927e-06, 1.6923e-08),
    ),
    "Ni": (
        (5000, 6.8669e-05, 3.0836e-06), (6000, 4.7066e-05, 1.5606e-06), (7000, 3.3948e-05, 8.7129e-07),
        (8000, 2.4749e-05, 5.2185e-07), (8332, 1.5329e-05, 4.4564e-07), (8334, 1.5221e-05, 3.4822e-06),
        (9000, 2.0460e-05, 2.6651e-06), (10000, 1.7224e-05, 1.8346e-06), (11000, 1.4471e-05, 1.3008e-06),
        (12000, 1.2267e-05, 9.4639e-07), (13000, 1.0506e-05, 7.0416e-07), (15000, 7.9290e-06, 4.1247e-07),
        (17500, 5.8346e-06, 2.3011e-07), (20000, 4.4660e-06, 1.3808e-07), (25000, 2.8527e-06, 5.8307e-08),
        (30000, 1.9767e-06, 2.8636e-08),
    ),
}

#: Bulk densities (g/cm^3) the table was computed for.
DENSITY_G_CM3 = {"Au": 19.32, "NiO": 6.67, "Ni": 8.908}

#: Mass fraction of each XRF element in each material (Ni in NiO: 58.693 / 74.692).
ELEMENT_MASS_FRACTION = {("Au", "Au"): 1.0, ("Ni", "Ni"): 1.0, ("NiO", "Ni"): 58.6934 / (58.6934 + 15.999)}

MATERIALS = tuple(TABLE)
ENERGY_RANGE_EV = (5000.0, 30000.0)


def _material(material: str) -> np.ndarray:
    if material not in TABLE:
        raise ValueError(f"unknown material {material!r}; the table has {MATERIALS}")
    return np.asarray(TABLE[material], dtype=np.float64)


def refractive_index(material: str, energy_ev: float) -> tuple[float, float]:
    """(delta, beta) of ``material`` at ``energy_ev`` (5-30 keV), log-log interpolated from :data:`TABLE`.

    Examples
    --------
    >>> d, b = refractive_index("Au", 12000.0)
    >>> f"{d:.3e} {b:.3e}"
    '1.840e-05 2.853e-06'
    """
    tab = _material(material)
    e = float(energy_ev)
    lo, hi = ENERGY_RANGE_EV
    if not (lo <= e <= hi):
        raise ValueError(f"energy {e:g} eV is outside the tabulated range {lo:g}-{hi:g} eV of the materials table")
    log_e = np.log(tab[:, 0])
    delta = math.exp(np.interp(math.log(e), log_e, np.log(tab[:, 1])))
    beta = math.exp(np.interp(math.log(e), log_e, np.log(tab[:, 2])))
    return delta, beta


def transmission(thickness_m, material: str, energy_ev: float) -> np.ndarray:
    """Complex transmission exp(i k (-delta) t) exp(-k beta t) of a projected thickness map (metres).

    Parameters
    ----------
    thickness_m : array-like of projected thickness in metres (any shape).
    material : ``"Au"``, ``"NiO"`` or ``"Ni"``.
    energy_ev : photon energy in eV (5-30 keV).

    Returns
    -------
    complex128 array of the same shape: phase -k delta t (negative for matter), magnitude exp(-k beta t) < 1.

    Examples
    --------
    >>> t = transmission([0.0, 300e-9], "Au", 12000.0)
    >>> round(float(np.angle(t[1])), 3), round(float(abs(t[1])), 4)
    (-0.336, 0.9493)
    """
    t = np.asarray(thickness_m, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("thickness map contains NaN or inf")
    delta, beta = refractive_index(material, energy_ev)
    k = wavenumber_per_m(energy_ev)
    return np.exp(k * t * (-1j * delta - beta))


def phase_per_m(material: str, energy_ev: float) -> float:
    """Phase shift per metre of thickness, -k delta (rad/m)."""
    delta, _ = refractive_index(material, energy_ev)
    return -wavenumber_per_m(energy_ev) * delta


def element_areal_density(thickness_m, material: str, element: str) -> np.ndarray:
    """Projected mass of ``element`` per area, ug/cm^2, for a projected thickness (m) of ``material``.

    Examples
    --------
    >>> round(float(element_areal_density(1e-6, "NiO", "Ni")), 1)   # 1 um NiO: 667 ug/cm^2 of which 78.6 % Ni
    524.1
    """
    key = (material, element)
    if key not in ELEMENT_MASS_FRACTION:
        raise ValueError(f"no mass fraction of element {element!r} in material {material!r}; known pairs: "
                         f"{sorted(ELEMENT_MASS_FRACTION)}")
    t_cm = np.asarray(thickness_m, dtype=np.float64) * 100.0
    return t_cm * DENSITY_G_CM3[material] * ELEMENT_MASS_FRACTION[key] * 1e6
