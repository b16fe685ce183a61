"""`ptycho-ddip simulate` and `ptycho-ddip reconstruct`: outputs hold what DESIGN.md section 4 says, config files and
flags combine, bad inputs give one error line with exit status 2 and write nothing."""
import json
import os

import h5py
import numpy as np
import pytest
import tifffile
import torch

from ptycho_ddip.cli import main
from ptycho_ddip.io import read_dataset, read_reconstruction

from conftest import TEST_DEVICE

torch.set_num_threads(1)

SIM = ["--shape", "64", "64", "--probe-shape", "32", "32", "--probe", "gaussian", "--probe-fwhm-m", "80e-9",
       "--step-px", "8", "--dose", "1e5"]
FAST = ["--epochs", "2", "--batch-size", "8", "--device", TEST_DEVICE, "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    path = str(d / "data.h5")
    assert main(["simulate", "-o", path, *SIM, "--seed", "4", "--spacing-dof", "2"]) == 0
    return path


def test_simulate_writes_the_documented_layout(data, capsys):
    with h5py.File(data, "r") as h5:
        assert h5["exchange/data"].dtype == np.float32 and h5["exchange/data"].shape == (25, 32, 32)
        assert h5["exchange/data"].attrs["kind"] == "intensity"
        for key in ("energy_ev", "psize_cm", "probe_pos_px", "slice_pos_cm", "free_prop_cm", "probe"):
            assert f"metadata/{key}" in h5, key
        assert h5["metadata/probe_pos_px"].shape == (25, 2)
        assert h5["metadata/free_prop_cm"][()] in (b"inf", "inf")
        assert h5["ground_truth/object"].shape == (2, 64, 64) and np.iscomplexobj(h5["ground_truth/object"][()])
        assert sorted(h5["ground_truth/xrf"]) == ["Au", "Ni"]
        counts = h5["exchange/data"][()]
    assert np.array_equal(counts, np.round(counts))  # Poisson counts
    from ptycho_ddip.multislice.physics import depth_of_field_m, wavelength_m

    ds = read_dataset(data)
    assert ds.energy_ev == 12000.0 and ds.pixel_size_m == pytest.approx(10e-9)
    spacing = ds.slice_pos_m[1] - ds.slice_pos_m[0]
    assert spacing == pytest.approx(2 * depth_of_field_m(10e-9, wavelength_m(12000.0)))  # --spacing-dof 2


def test_simulate_config_file_and_flags(tmp_path):
    cfg = tmp_path / "sim.json"
    cfg.write_text(json.dumps({"simulation": {"shape": [48, 48], "probe_shape": [32, 32], "probe": "gaussian",
                                              "step_px": 16, "seed": 1, "phantom": "zp-nio",
                                              "spacing_dof": 1.0}}))
    out = str(tmp_path / "z.h5")
    assert main(["simulate", "-o", out, "--config", str(cfg), "--spacing-m", "5e-6", "--no-noise"]) == 0
    ds = read_dataset(out)
    assert ds.ground_truth_object.shape == (2, 48, 48) and ds.n_positions == 4
    assert ds.slice_pos_m[1] == pytest.approx(5e-6)  # the flag replaced the config's spacing_dof
    assert not np.array_equal(ds.intensities, np.round(ds.intensities))  # --no-noise: exact intensities


def test_reconstruct_writes_result_tiffs_and_config(data, tmp_path, capsys):
    out = str(tmp_path / "rec.h5")
    assert main(["reconstruct", data, "-o", out, *FAST, "--seed", "3", "--optimize-probe", "--probe-delay", "1",
                 "--checkpoint-every", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    res = read_reconstruction(out)
    assert res["object"].shape == (2, 64, 64) and np.iscomplexobj(res["object"])
    assert res["probe"].shape == (32, 32) and res["positions"].shape == (25, 2) and res["loss"].shape == (2,)
    assert res["seed"] == 3 and res["n_ranks"] == 1 and res["version"]
    assert res["config"]["optimize_probe"] is True and res["config"]["probe_delay_epochs"] == 1
    phase = tifffile.imread(str(tmp_path / "rec_phase.tiff"))
    assert phase.shape == (2, 64, 64) and phase.dtype == np.float32
    np.testing.assert_allclose(phase, np.angle(res["object"]), atol=1e-6)
    assert tifffile.imread(str(tmp_path / "rec_magnitude.tiff")).shape == (2, 64, 64)
    assert not os.path.exists(out + ".ckpt")  # removed once the result is written

    # a config file (reconstruction table) with a flag overriding it; the previous result as initial guess
    cfg = tmp_path / "rec.json"
    cfg.write_text(json.dumps({"reconstruction": {"epochs": 1, "lr_object": 0.01, "loss": "poisson"}}))
    out2 = str(tmp_path / "rec2.h5")
    assert main(["reconstruct", data, "-o", out2, "--config", str(cfg), "--init", out, "--device", TEST_DEVICE,
                 "--epochs", "3", "--no-progress"]) == 0
    cfg2 = read_reconstruction(out2)["config"]
    assert cfg2["epochs"] == 3 and cfg2["lr_object"] == 0.01 and cfg2["loss"] == "poisson" and cfg2["init"] == out


def test_reconstruct_xrf_seeded(data, tmp_path):
    out = str(tmp_path / "x.h5")
    assert main(["reconstruct", data, "-o", out, *FAST, "--init", "xrf", "--xrf-elements", "Ni:1"]) == 0
    res = read_reconstruction(out)
    assert res["config"]["xrf_elements"] == {"Ni": 1} and "xrf_seed" in res["extra"]


def _listing(path):
    return sorted(os.listdir(path))


@pytest.mark.parametrize("case", ["missing data", "not a dataset", "exists", "unknown config key", "xrf no elements",
                                  "xrf unknown element", "bad init shape", "bad epochs", "missing out dir"])
def test_reconstruct_bad_input_exit_2_and_nothing_written(case, data, tmp_path, capsys):
    out = str(tmp_path / "r.h5")
    argv = ["reconstruct", data, "-o", out, *FAST]
    if case == "missing data":
        argv[1] = str(tmp_path / "nope.h5")
        expect = "not found"
    elif case == "not a dataset":
        bad = tmp_path / "bad.h5"
        with h5py.File(bad, "w") as h5:
            h5["x"] = np.zeros(3)
        argv[1] = str(bad)
        expect = "exchange/data"
    elif case == "exists":
        (tmp_path / "r.h5").write_bytes(b"keep")
        expect = "--overwrite"
    elif case == "unknown config key":
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps({"epochs": 2, "learning_rate": 1}))
        argv += ["--config", str(cfg)]
        expect = "learning_rate"
    elif case == "xrf no elements":
        argv += ["--init", "xrf"]
        expect = "xrf_elements"
    elif case == "xrf unknown element":
        argv += ["--init", "xrf", "--xrf-elements", "Fe:1"]
        expect = "Fe"
    elif case == "bad init shape":
        guess = tmp_path / "g.npy"
        np.save(guess, np.ones((2, 10, 10), dtype=np.complex64))
        argv += ["--init", str(guess)]
        expect = "shape"
    elif case == "bad epochs":
        argv += ["--epochs", "-3"]
        expect = "epochs"
    else:
        argv[3] = str(tmp_path / "no" / "r.h5")
        expect = "does not exist"
    before = _listing(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ptycho-ddip reconstruct: error:") and expect in err[0], err
    assert _listing(tmp_path) == before
    if case == "exists":
        assert (tmp_path / "r.h5").read_bytes() == b"keep"


@pytest.mark.parametrize("argv, expect", [
    (["--shape", "20", "20"], "shape"),
    (["--energy-ev", "100"], "energy_ev"),
    (["--probe-shape", "256", "256"], "larger"),
])
def test_simulate_bad_options_exit_2_and_nothing_written(argv, expect, tmp_path, capsys):
    assert main(["simulate", "-o", str(tmp_path / "s.h5"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0]
    assert _listing(tmp_path) == []


def test_simulate_refuses_to_overwrite(data, capsys):
    mtime = os.path.getmtime(data)
    assert main(["simulate", "-o", data, *SIM]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert os.path.getmtime(data) == mtime


def test_bad_xrf_elements_flag_is_a_usage_error(data, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["reconstruct", data, "-o", str(tmp_path / "r.h5"), "--init", "xrf", "--xrf-elements", "Ni"])
    assert exc.value.code == 2 and _listing(tmp_path) == []
