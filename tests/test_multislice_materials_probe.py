"""Materials table, slice transmissions and probe models."""
import math

import numpy as np
import pytest
import torch

from ptycho_ddip.multislice.materials import (TABLE, element_areal_density, phase_per_m, refractive_index,
                                              transmission)
from ptycho_ddip.multislice.physics import wavelength_m
from ptycho_ddip.multislice.probe import focused_probe, gaussian_probe, normalize_probe, supplied_probe

torch.set_num_threads(1)


def test_table_values_and_interpolation():
    # table points are returned exactly; Henke/CXRO Au at 10 keV: delta 2.99e-5, beta 2.21e-6
    assert refractive_index("Au", 10000.0) == pytest.approx((2.9912e-05, 2.2073e-06), rel=1e-10)
    d, b = refractive_index("NiO", 11000.0)
    assert d == pytest.approx(1.0975e-05, rel=1e-10)
    # between points: log-log interpolation lies between the neighbours, and follows delta ~ E^-2
    d9, _ = refractive_index("Ni", 9500.0)
    assert 1.7224e-05 < d9 < 2.0460e-05
    assert d9 == pytest.approx(2.0460e-05 * (9000 / 9500) ** 2, rel=0.02)
    # absorption edges: Au L3 (11.919 keV) and Ni K (8.333 keV) raise beta across them
    assert refractive_index("Au", 11930.0)[1] > 2 * refractive_index("Au", 11900.0)[1]
    assert refractive_index("NiO", 8400.0)[1] > 5 * refractive_index("NiO", 8300.0)[1]
    for mat, rows in TABLE.items():
        e = [r[0] for r in rows]
        assert e == sorted(e) and e[0] == 5000 and e[-1] == 30000, mat
    with pytest.raises(ValueError, match="range"):
        refractive_index("Au", 40000.0)
    with pytest.raises(ValueError, match="unknown material"):
        refractive_index("Pb", 10000.0)


def test_transmission_goodman_sign():
    e = 12000.0
    k = 2 * math.pi / wavelength_m(e)
    d, b = refractive_index("Au", e)
    t = transmission(np.array([0.0, 100e-9, 300e-9]), "Au", e)
    assert t[0] == 1.0
    np.testing.assert_allclose(np.angle(t[1:]), -k * d * np.array([100e-9, 300e-9]), rtol=1e-12)
    np.testing.assert_allclose(np.abs(t[1:]), np.exp(-k * b * np.array([100e-9, 300e-9])), rtol=1e-12)
    assert phase_per_m("Au", e) == pytest.approx(-k * d)
    assert element_areal_density(1e-6, "NiO", "Ni") == pytest.approx(100e-6 * 6.67 * 0.78579 * 1e6, rel=1e-4)


def test_gaussian_probe_fwhm_and_normalisation():
    p = gaussian_probe((64, 64), 100e-9, 10e-9, photons=5e5, dtype=torch.complex128)
    inten = (p.abs() ** 2).numpy()
    assert inten.sum() == pytest.approx(5e5, rel=1e-12)
    assert np.unravel_index(np.argmax(inten), inten.shape) == (32, 32)
    row = inten[32] / inten[32, 32]
    assert row[32 + 5] == pytest.approx(0.5, rel=1e-12)  # FWHM 100 nm = 10 px: half maximum at +-5 px
    assert float((gaussian_probe((16, 16), 50e-9, 10e-9).abs() ** 2).sum()) == pytest.approx(1.0, rel=1e-6)


def test_focused_probe():
    lam = wavelength_m(12000.0)
    focus = focused_probe((64, 64), 10e-9, lam, 20e-9, central_stop=0.4, defocus_m=0.0, dtype=torch.complex128)
    spec = torch.fft.fft2(focus).abs()
    f = torch.sqrt(torch.fft.fftfreq(64, 10e-9)[:, None] ** 2 + torch.fft.fftfreq(64, 10e-9)[None, :] ** 2)
    fmax = 1 / (2 * 20e-9)
    assert float(spec[f > fmax * 1.001].max()) < 1e-10 * float(spec.max())  # band-limited to the pupil
    assert float(spec[f < 0.4 * fmax * 0.999].max()) < 1e-10 * float(spec.max())  # central stop
    inten = focus.abs() ** 2
    assert tuple(np.unravel_index(int(torch.argmax(inten)), (64, 64))) == (32, 32)
    defocused = focused_probe((64, 64), 10e-9, lam, 20e-9, defocus_m=30e-6, photons=1e6)
    assert float((defocused.abs() ** 2).sum()) == pytest.approx(1e6, rel=1e-5)
    assert float((defocused.abs() ** 2).max()) < 0.5 * float((focus.abs() ** 2).max()) * 1e6  # spread out
    with pytest.raises(ValueError, match="Nyquist"):
        focused_probe((64, 64), 10e-9, lam, 5e-9)


def test_supplied_probe_checks():
    arr = np.ones((8, 8), dtype=np.complex64) * 2
    assert float((supplied_probe(arr).abs() ** 2).sum()) == pytest.approx(256.0)
    assert float((supplied_probe(arr, photons=10.0).abs() ** 2).sum()) == pytest.approx(10.0, rel=1e-6)
    with pytest.raises(ValueError, match="detector"):
        supplied_probe(arr, shape=(16, 16))
    bad = arr.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        supplied_probe(bad)
    with pytest.raises(ValueError):
        normalize_probe(torch.zeros(4, 4, dtype=torch.complex64))
