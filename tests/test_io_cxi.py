"""CXI 1.6 / NXcxi_ptycho diffraction files (ptycho_ddip.io.cxi): a CXI file written from a simulated dataset
reconstructs to the same object as the Adorym-layout file, `convert` goes both ways, foreign layouts are read, and a
missing or inconsistent field gets a one-line error naming it."""
from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest

from ptycho_ddip.cli import main
from ptycho_ddip.io import InputError, read_dataset, read_reconstruction, write_dataset
from ptycho_ddip.io.cxi import ELECTRON_VOLT_J, is_cxi, read_cxi, write_cxi

RUN = ["--epochs", "3", "--batch-size", "12", "--device", "cpu", "--seed", "5", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def simulated():
    """A 64x64 two-slice dataset (32x32 Gaussian probe, 36 positions), as in tests/test_pipeline.py."""
    from ptycho_ddip.multislice.simulate import simulate

    return simulate(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=6.0,
                    dose=1e5, seed=7)


@pytest.fixture
def files(tmp_path, simulated):
    """The dataset in the Adorym layout and as CXI (with ptycho_ddip's extras: object shape, slice positions)."""
    h5, cxi = str(tmp_path / "data.h5"), str(tmp_path / "data.cxi")
    write_dataset(h5, simulated)
    write_cxi(cxi, simulated)
    return h5, cxi


def test_round_trip_keeps_every_field(files, simulated):
    _, cxi = files
    ds = read_dataset(cxi)  # the dispatcher of the dataset reading path
    assert is_cxi(cxi) and ds.source == cxi
    np.testing.assert_array_equal(ds.intensities, simulated.intensities)
    np.testing.assert_array_equal(ds.positions_px, simulated.positions_px)
    np.testing.assert_array_equal(ds.probe, simulated.probe)
    np.testing.assert_array_equal(ds.slice_pos_m, simulated.slice_pos_m)
    np.testing.assert_array_equal(ds.ground_truth_object, simulated.ground_truth_object)
    assert ds.object_shape == simulated.object_shape and sorted(ds.xrf) == sorted(simulated.xrf)
    assert math.isclose(ds.pixel_size_m, simulated.pixel_size_m, rel_tol=1e-12)
    assert math.isclose(ds.energy_ev, simulated.energy_ev, rel_tol=1e-12)
    with h5py.File(cxi, "r") as h5:  # the CXI fields themselves: SI units, linked data and translations
        assert math.isclose(h5["entry_1/instrument_1/source_1/energy"][()], simulated.energy_ev * ELECTRON_VOLT_J)
        xyz = h5["entry_1/data_1/translation"][()]
        assert xyz.shape == (simulated.n_positions, 3) and np.all(xyz[:, 2] == 0)
        np.testing.assert_array_equal(h5["entry_1/data_1/data"][()], simulated.intensities)
        # probe centres relative to the object's centre, metres: x = (x_px + w/2 - W/2) * pixel
        expected_x = (simulated.positions_px[:, 1] + 16 - 32) * simulated.pixel_size_m
        np.testing.assert_allclose(xyz[:, 0], expected_x, rtol=1e-12, atol=1e-20)
        lam = 1.239841984332e-6 / simulated.energy_ev
        det = h5["entry_1/instrument_1/detector_1"]
        z, dp = det["distance"][()], det["x_pixel_size"][()]
        assert math.isclose(lam * z / (32 * dp), simulated.pixel_size_m, rel_tol=1e-12)


def test_cxi_reconstructs_to_the_same_object_as_the_adorym_file(tmp_path, files, simulated, capsys):
    h5, cxi = files
    with h5py.File(cxi, "r+") as f:  # CXI proper records no slice positions
        del f["entry_1/ptycho_ddip/slice_pos_m"]
    bad = str(tmp_path / "bad.h5")
    assert main(["reconstruct", cxi, "-o", bad] + RUN) == 2
    err = capsys.readouterr().err
    assert "--slice-spacing-m" in err and cxi in err and err.count("\n") == 1
    assert not os.path.exists(bad)
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    spacing = float(simulated.slice_pos_m[1])
    assert main(["reconstruct", h5, "-o", a] + RUN) == 0
    assert main(["reconstruct", cxi, "-o", b, "--slice-spacing-m", repr(spacing)] + RUN) == 0
    obj_a, obj_b = read_reconstruction(a)["object"], read_reconstruction(b)["object"]
    assert obj_a.dtype == obj_b.dtype == np.complex64 and obj_a.shape == (2, 64, 64)
    assert np.linalg.norm(obj_b - obj_a) / np.linalg.norm(obj_a) < 1e-5
    assert not np.allclose(obj_a, 1)  # the reconstruction moved


def test_convert_both_ways_and_info(tmp_path, files, simulated, capsys):
    h5, _ = files
    cxi, back = str(tmp_path / "c.cxi"), str(tmp_path / "back.h5")
    assert main(["convert", h5, "-o", cxi, "--detector-pixel-size-m", "55e-6"]) == 0
    assert main(["convert", cxi, "-o", back]) == 0
    assert main(["convert", h5, "-o", cxi]) == 2  # no overwrite without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    ds = read_dataset(back)
    np.testing.assert_array_equal(ds.intensities, simulated.intensities)
    np.testing.assert_array_equal(ds.positions_px, simulated.positions_px)
    np.testing.assert_array_equal(ds.slice_pos_m, simulated.slice_pos_m)
    assert math.isclose(ds.pixel_size_m, simulated.pixel_size_m, rel_tol=1e-12)
    with h5py.File(cxi, "r") as f:
        assert f["entry_1/instrument_1/detector_1/x_pixel_size"][()] == 55e-6
    assert main(["info", cxi]) == 0
    out = capsys.readouterr().out
    assert "CXI ptychography data: 36 patterns of 32x32" in out and "2 slice position(s)" in out
    # slice positions can be given while converting a CXI file that has none
    plain = str(tmp_path / "plain.cxi")
    write_cxi(plain, simulated, extras=False)
    again = str(tmp_path / "again.h5")
    assert main(["convert", plain, "-o", again, "--slice-spacing-m", "2e-6", "--n-slices", "3"]) == 0
    np.testing.assert_allclose(read_dataset(again).slice_pos_m, [0, 2e-6, 4e-6])


def test_a_foreign_cxi_layout(tmp_path, simulated):
    """Only the CXI fields, as other tools write them: data in data_1 only, absolute motor translations (n, 3)
    under sample_1/geometry_1, energy with a units attribute in eV, no probe, a mask with two bad pixels."""
    path = str(tmp_path / "beamline.h5")  # CXI content without the .cxi suffix
    ds = simulated
    lam = 1.239841984332e-6 / ds.energy_ev
    dp, n = 75e-6, ds.detector_shape[1]
    with h5py.File(path, "w") as h5:
        h5["cxi_version"] = 150
        h5["entry_1/data_1/data"] = ds.intensities
        energy = h5.create_dataset("entry_1/instrument_1/source_1/energy", data=ds.energy_ev)
        energy.attrs["units"] = "eV"
        h5["entry_1/instrument_1/detector_1/distance"] = ds.pixel_size_m * n * dp / lam
        h5["entry_1/instrument_1/detector_1/x_pixel_size"] = dp
        h5["entry_1/instrument_1/detector_1/y_pixel_size"] = dp
        mask = np.zeros(ds.detector_shape, np.uint32)
        mask[0, :2] = 1
        h5["entry_1/instrument_1/detector_1/mask"] = mask
        xyz = np.zeros((ds.n_positions, 3))
        xyz[:, 0] = 1.5e-3 + (ds.positions_px[:, 1] + 0.5) * ds.pixel_size_m
        xyz[:, 1] = -2e-3 + ds.positions_px[:, 0] * ds.pixel_size_m
        xyz[:, 2] = 0.1
        h5["entry_1/sample_1/geometry_1/translation"] = xyz
    assert is_cxi(path)
    with pytest.warns(UserWarning, match="flags 2 pixel"):
        got = read_cxi(path)
    assert got.probe is None and got.slice_pos_m.size == 0 and got.object_shape is None
    assert math.isclose(got.pixel_size_m, ds.pixel_size_m, rel_tol=1e-9)
    # the scan's corner at pixel 0, steps kept (to 1e-6 px)
    np.testing.assert_allclose(got.positions_px, ds.positions_px - ds.positions_px.min(axis=0), atol=1e-6)


def _edit(path, edit):
    with h5py.File(path, "r+") as h5:
        edit(h5)
    return path


DET = "entry_1/instrument_1/detector_1"


@pytest.mark.parametrize("edit, field", [
    (lambda h5: h5.__delitem__("entry_1/instrument_1/source_1/energy"), "entry_1/instrument_1/source_1/energy"),
    (lambda h5: h5["entry_1/instrument_1/source_1/energy"].write_direct(np.array(12000.0)),
     "entry_1/instrument_1/source_1/energy"),
    (lambda h5: h5.__delitem__(f"{DET}/distance"), f"{DET}/distance"),
    (lambda h5: h5.__delitem__(f"{DET}/x_pixel_size"), f"{DET}/x_pixel_size"),
    (lambda h5: h5[f"{DET}/y_pixel_size"].write_direct(np.array(1e-4)), f"{DET}/x_pixel_size"),
    (lambda h5: [h5.__delitem__(p) for p in ("entry_1/data_1/data", f"{DET}/data")], "entry_1/data_1/data"),
    (lambda h5: [h5.__delitem__(p) for p in ("entry_1/data_1/translation", f"{DET}/translation",
                                             "entry_1/sample_1/geometry_1/translation")], "translation"),
    (lambda h5: [h5.__delitem__("entry_1/data_1/translation"),
                 h5.create_dataset("entry_1/data_1/translation", data=np.zeros((5, 3)))], "entry_1/data_1/translation"),
    (lambda h5: [h5.__delitem__("entry_1/data_1/translation"),
                 h5.create_dataset("entry_1/data_1/translation",
                                   data=h5["entry_1/sample_1/geometry_1/translation"][()] + 1e-6)],
     "entry_1/sample_1/geometry_1/translation"),
    (lambda h5: [h5.__delitem__("entry_1/instrument_1/source_1/illumination"),
                 h5.create_dataset("entry_1/instrument_1/source_1/illumination", data=np.ones((8, 8), complex))],
     "entry_1/instrument_1/source_1/illumination"),
    (lambda h5: h5.create_dataset(f"{DET}/mask", data=np.zeros((4, 4))), f"{DET}/mask"),
    (lambda h5: h5[f"{DET}/data"].write_direct(-np.ones(h5[f"{DET}/data"].shape, np.float32)),
     "entry_1/data_1/data"),
])
def test_missing_or_inconsistent_fields_give_one_line_errors(tmp_path, simulated, edit, field, capsys):
    path = str(tmp_path / "bad.cxi")
    write_cxi(path, simulated)
    _edit(path, edit)
    with pytest.raises(InputError) as info:
        read_dataset(path)
    message = str(info.value)
    assert message.startswith(path) and field in message and "\n" not in message, message
    out = str(tmp_path / "rec.h5")
    assert main(["reconstruct", path, "-o", out] + RUN) == 2  # the command says the same, once, and writes nothing
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1 and not os.path.exists(out)


def test_pipeline_takes_slice_spacing_for_cxi(tmp_path, simulated, capsys):
    from ptycho_ddip.cli import build_parser
    from ptycho_ddip.cli_pipeline import pipeline_options_from_args

    path = str(tmp_path / "plain.cxi")
    write_cxi(path, simulated, extras=False)
    outdir = str(tmp_path / "run")
    assert main(["pipeline", path, "-o", outdir, "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--slice-spacing-m" in err and err.count("\n") == 1 and not os.path.exists(outdir)
    args = build_parser().parse_args(["pipeline", path, "-o", outdir, "--slice-spacing-m", "3e-6"])
    opts = pipeline_options_from_args(args)
    assert opts.pass1.slice_pos_m == opts.pass2.slice_pos_m == [0.0, 3e-6]
    with pytest.raises(InputError, match="far-field"):
        import dataclasses

        write_cxi(str(tmp_path / "near.cxi"), dataclasses.replace(simulated, free_prop_m=1e-3))
