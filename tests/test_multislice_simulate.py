"""Simulated datasets: exactly the forward model plus Poisson noise, XRF maps, options, files."""

import numpy as np
import pytest
import torch

from ptycho_ddip.io import read_dataset
from ptycho_ddip.phantoms import make_phantom
from ptycho_ddip.multislice._options import OptionsError
from ptycho_ddip.multislice.forward import MultisliceForward
from ptycho_ddip.multislice.physics import depth_of_field_m, wavelength_m
from ptycho_ddip.multislice.simulate import SimulationOptions, scan_positions, simulate, simulate_to_file

torch.set_num_threads(1)

SMALL = dict(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=6.0, dose=1e5)


def test_noise_free_data_are_the_forward_model_of_the_ground_truth():
    ds = simulate(SMALL, poisson=False, jitter_px=0.4, seed=3)
    fwd = MultisliceForward(ds.detector_shape, ds.slice_pos_m, wavelength_m(ds.energy_ev), ds.pixel_size_m)
    ref = fwd.intensities(torch.from_numpy(ds.ground_truth_object), torch.from_numpy(ds.probe),
                          ds.positions_px).numpy()
    np.testing.assert_allclose(ds.intensities, ref, rtol=1e-6, atol=1e-6 * ref.max())
    assert np.any(ds.positions_px % 1 != 0)  # jitter gives fractional positions
    assert float(np.sum(np.abs(ds.probe) ** 2)) == pytest.approx(1e5, rel=1e-9)


def test_poisson_counts_seeded():
    clean = simulate(SMALL, poisson=False, seed=1).intensities.astype(np.float64)
    a, b, c = simulate(SMALL, seed=1), simulate(SMALL, seed=1), simulate(SMALL, seed=2)
    np.testing.assert_array_equal(a.intensities, b.intensities)
    assert not np.array_equal(a.intensities, c.intensities)
    counts = a.intensities.astype(np.float64)
    assert np.all(counts == np.round(counts))
    bright = clean > 30
    z = (counts[bright] - clean[bright]) / np.sqrt(clean[bright])
    assert abs(z.mean()) < 0.05 and 0.9 < z.var() < 1.1


def test_slice_spacing_options():
    lam = wavelength_m(12000.0)
    ds = simulate(SMALL, spacing_dof=0.15, xrf_counts=0)
    np.testing.assert_allclose(ds.slice_pos_m, [0.0, 0.15 * depth_of_field_m(10e-9, lam)], rtol=1e-12)
    assert SimulationOptions(spacing_m=2e-6).slice_spacing_m == 2e-6
    assert SimulationOptions().slice_spacing_m == pytest.approx(3.5 * 5.4 * 1e-16 / lam)
    assert SimulationOptions(spacing_dof=1, dof_resolution_m=20e-9).slice_spacing_m == pytest.approx(
        5.4 * 4e-16 / lam)
    with pytest.raises(OptionsError, match="either"):
        SimulationOptions(spacing_m=1e-6, spacing_dof=1.0)


@pytest.mark.parametrize("bad", [dict(colour="red"), dict(scan="zigzag"), dict(shape=(16, 16)), dict(dose=-1),
                                 dict(energy_ev=50000), dict(probe_shape=(256, 256)), dict(step_px=0),
                                 dict(seed=-1), dict(poisson="yes")])
def test_bad_simulation_options(bad):
    with pytest.raises(OptionsError):
        SimulationOptions.from_dict(bad)


def test_scans_stay_inside():
    for scan in ("raster", "spiral"):
        o = SimulationOptions(shape=(96, 80), probe_shape=(32, 32), scan=scan, step_px=5.0, jitter_px=1.0)
        pos = scan_positions(o)
        assert pos.min() >= 0 and pos[:, 0].max() <= 64 and pos[:, 1].max() <= 48
        assert 0.6 < pos.shape[0] / (65 * 49 / 25.0) < 1.6, (scan, pos.shape)


def test_xrf_maps():
    ds = simulate(SMALL, seed=4, xrf_counts=500)
    thickness = make_phantom("au-nio", (64, 64), seed=4).thickness_m
    for element, slice_index, g_cm3 in (("Au", 0, 19.32), ("Ni", 1, 6.67 * 58.6934 / 74.6924)):
        truth = ds.ground_truth_xrf[element]
        measured = ds.xrf[element]
        assert truth.shape == measured.shape == (64, 64)
        # ground truth = projected areal mass in ug/cm^2 = thickness_cm * density * mass fraction * 1e6
        np.testing.assert_allclose(truth, thickness[slice_index] * 100 * g_cm3 * 1e6, rtol=1e-4)
        assert np.corrcoef(measured.ravel(), truth.ravel())[0, 1] > 0.6
        assert measured.sum() == pytest.approx(truth.sum(), rel=0.15)  # blur conserves mass up to the edges
    noisefree = simulate(SMALL, seed=4, xrf_counts=0)
    assert np.corrcoef(ds.xrf["Ni"].ravel(), noisefree.xrf["Ni"].ravel())[0, 1] > 0.95


def test_simulate_to_file_round_trip_and_no_overwrite(tmp_path):
    out = tmp_path / "sim.h5"
    ds = simulate_to_file(out, SMALL, seed=5)
    back = read_dataset(out)
    np.testing.assert_array_equal(back.intensities, ds.intensities)
    np.testing.assert_array_equal(back.slice_pos_m, ds.slice_pos_m)
    np.testing.assert_array_equal(back.ground_truth_object, ds.ground_truth_object)
    assert sorted(back.xrf) == ["Au", "Ni"] and back.probe.shape == (32, 32)
    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        simulate_to_file(out, SMALL, seed=6)
    assert out.read_bytes() == before
    with pytest.raises(OptionsError):
        simulate_to_file(tmp_path / "bad.h5", dict(SMALL, scan="zigzag"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.h5"]
