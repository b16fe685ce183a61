"""The crosstalk benchmark's phantoms (litho-cell, cell-litho, litho-cell-nio) and multislice simulation of them."""
import numpy as np
import pytest

from ptycho_ddip.multislice.materials import phase_per_m
from ptycho_ddip.phantoms import PHANTOMS, cell_pattern, litho_pattern, make_phantom


@pytest.mark.parametrize("name, n, materials", [("litho-cell", 2, ("Au", "NiO")), ("cell-litho", 2, ("NiO", "Au")),
                                                 ("litho-cell-nio", 3, ("Au", "NiO", "NiO"))])
def test_benchmark_phantoms(name, n, materials):
    ph = make_phantom(name, (64, 80), seed=3)
    assert name in PHANTOMS and ph.thickness_m.shape == (n, 64, 80) and ph.materials == materials
    assert np.array_equal(ph.thickness_m, make_phantom(name, (64, 80), seed=3).thickness_m)  # seeded
    assert not np.array_equal(ph.thickness_m, make_phantom(name, (64, 80), seed=4).thickness_m)
    peak = {m: ph.thickness_m[i].max() * -phase_per_m(m, 12000.0) for i, m in enumerate(materials)}
    strong = ph.thickness_m[materials.index("Au")].max() * -phase_per_m("Au", 12000.0)
    weak = ph.thickness_m[materials.index("NiO")].max() * -phase_per_m("NiO", 12000.0)
    assert 0.7 < strong < 0.85 and 0.12 < weak < 0.18, peak  # 0.78 rad over 0.15 rad at 12 keV


def test_patterns_are_bounded_and_textured():
    lit, cel = litho_pattern((96, 96), 0), cell_pattern((96, 96), 0)
    for p in (lit, cel):
        assert p.min() >= 0 and p.max() <= 1 + 1e-12 and p.std() > 0.1 * p.max()
    assert np.mean((lit > 0.01) & (lit < 0.99)) < 0.25  # sharp: few edge pixels
    assert np.mean(lit > 0.5) > 0.2


def test_three_slice_simulation():
    from ptycho_ddip.multislice.simulate import simulate

    ds = simulate(phantom="litho-cell-nio", shape=(48, 48), probe_shape=(32, 32), probe="gaussian",
                  probe_fwhm_m=80e-9, step_px=8, spacing_m=5e-6, xrf_counts=0)
    assert ds.ground_truth_object.shape == (3, 48, 48)
    np.testing.assert_allclose(ds.slice_pos_m, [0.0, 5e-6, 10e-6])
    assert sorted(ds.xrf) == ["Au", "Ni"]
    from ptycho_ddip.multislice.materials import element_areal_density

    ph = make_phantom("litho-cell-nio", (48, 48), seed=0)
    ni = sum(element_areal_density(ph.thickness_m[s], "NiO", "Ni") for s in (1, 2))
    np.testing.assert_allclose(ds.ground_truth_xrf["Ni"], ni)  # one map per element: the sum over its slices
