"""`ptycho-ddip separate` end to end: outputs, refusal to overwrite, bad inputs give clear errors and write nothing."""
import json
import os
import re

import h5py
import numpy as np
import pytest
import tifffile

from ptycho_ddip.cli import main
from ptycho_ddip.io import read_separation_result
from ptycho_ddip.phantoms import blend, make_phantom


@pytest.fixture()
def pair(tmp_path):
    b = blend(make_phantom("au-nio", (48, 48), seed=2).normalized())
    p = tmp_path / "in.npy"
    np.save(p, b.inputs)
    t = tmp_path / "truth.npy"
    np.save(t, b.truth)
    return b, str(p), str(t)


def test_separate_writes_h5_tiff_png_and_refuses_overwrite(tmp_path, pair, capsys):
    b, inp, truth = pair
    out = str(tmp_path / "sep.h5")
    assert main(["separate", inp, "-o", out, "--epochs", "6", "--seed", "3", "--truth", truth, "--no-progress",
                 "--mixing-iters", "100"]) == 0
    res = read_separation_result(out)
    assert res["separated"].shape == (2, 48, 48)
    np.testing.assert_allclose(res["inputs"], b.inputs)
    assert res["loss"].shape == (6, 5)
    assert res["config"]["seed"] == 3 and res["config"]["epochs"] == 6 and "version" in res["config"]
    assert res["monitor"].shape[1] == len(res["monitor_columns"])
    assert tifffile.imread(str(tmp_path / "sep_separated.tiff")).shape == (2, 48, 48)
    assert os.path.getsize(tmp_path / "sep.png") > 1000
    before = os.path.getmtime(out)
    assert main(["separate", inp, "-o", out, "--epochs", "2", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert os.path.getmtime(out) == before
    assert main(["separate", inp, "-o", out, "--epochs", "2", "--no-progress", "--mixing-iters", "100",
                 "--overwrite"]) == 0
    assert read_separation_result(out)["loss"].shape == (2, 5)


def test_snapshot_every_saves_the_slices_along_the_fit_and_a_filmstrip(tmp_path, pair):
    b, inp, _ = pair
    out = str(tmp_path / "sep.h5")
    assert main(["separate", inp, "-o", out, "--epochs", "6", "--snapshot-every", "2", "--no-progress",
                 "--mixing-iters", "100",
                 "--mixing-blur", "0.5", "--select", "final"]) == 0
    res = read_separation_result(out)
    assert res["config"]["estimate"]["blur_px"] == 0.5 and res["config"]["select"] == "final"
    assert list(res["extra"]["snapshot_epochs"]) == [2, 4, 6]
    np.testing.assert_allclose(res["extra"]["snapshots"][-1], res["separated"], atol=1e-9)
    assert res["config"]["snapshot_every"] == 2
    assert os.path.getsize(tmp_path / "sep_snapshots.png") > 1000
    # an existing filmstrip is a result too: refused without --overwrite, and nothing is fitted
    os.remove(out)
    assert main(["separate", inp, "-o", out, "--epochs", "2", "--snapshot-every", "1", "--no-progress"]) == 2
    assert not os.path.exists(out)


def test_two_files_and_hdf5_complex_with_part(tmp_path):
    rng = np.random.default_rng(0)
    obj = np.exp(1j * rng.random((2, 40, 40)))
    f = tmp_path / "recon.h5"
    with h5py.File(f, "w") as fh:
        fh["object"] = obj
    out = str(tmp_path / "s.h5")
    assert main(["separate", f"{f}:/object", "-o", out, "--epochs", "2", "--no-progress"]) == 2  # no --part
    assert not os.path.exists(out)
    assert main(["separate", f"{f}:/object", "--part", "phase", "-o", out, "--epochs", "2", "--no-progress",
                 "--mixing-iters", "100"]) == 0
    np.testing.assert_allclose(read_separation_result(out)["inputs"], np.angle(obj))
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.random((40, 40)))
    np.save(b, rng.random((40, 40)))
    out2 = str(tmp_path / "s2.h5")
    assert main(["separate", str(a), str(b), "-o", out2, "--epochs", "2", "--no-progress", "--filters", "dip",
                 "--method", "paper"]) == 0
    config = read_separation_result(out2)["config"]
    assert config["gamma_excl"] == 0.1 and config["learned"]["filters"] == "dip"  # shallow DIPs, learnable mixing
    assert config["method"] == "paper" and config["estimate"] is None


def _bad_inputs(tmp_path):
    rng = np.random.default_rng(1)
    cases = {}
    cases["missing file"] = ([str(tmp_path / "nope.npy")], "not found")
    h = tmp_path / "d.h5"
    with h5py.File(h, "w") as fh:
        fh["a"] = rng.random((2, 40, 40))
        fh["b"] = rng.random((2, 40, 40))
    cases["missing dataset"] = ([f"{h}:/zzz"], "zzz")
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.random((40, 40)))
    np.save(b, rng.random((40, 44)))
    cases["different shapes"] = ([str(a), str(b)], "shape")
    c = tmp_path / "c.npy"
    np.save(c, rng.random((2, 3, 40, 40)))
    cases["not 2-D"] = ([str(c)], "2-D")
    n = tmp_path / "n.npy"
    x = rng.random((2, 40, 40))
    x[0, 1, 1] = np.nan
    np.save(n, x)
    cases["NaN"] = ([str(n)], "NaN")
    k = tmp_path / "k.npy"
    x = rng.random((2, 40, 40))
    x[1] = 1.0
    np.save(k, x)
    cases["constant"] = ([str(k)], "constant")
    s = tmp_path / "s.npy"
    np.save(s, rng.random((2, 20, 40)))
    cases["too small"] = ([str(s)], "32")
    o = tmp_path / "o.npy"
    np.save(o, rng.random((1, 40, 40)))
    cases["one slice"] = ([str(o)], "2")
    z = tmp_path / "z.npy"
    np.save(z, np.exp(1j * rng.random((2, 40, 40))))
    cases["complex without part"] = ([str(z)], "--part")
    return cases


def test_every_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    for name, (args, fragment) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out_{name.replace(' ', '_')}.h5"
        code = main(["separate", *args, "-o", str(out), "--epochs", "2", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, name
        assert fragment in err, (name, err)
        assert os.path.basename(args[0].split(":")[0]) in err, (name, err)  # the file is named
        leftovers = [p for p in os.listdir(tmp_path) if p.startswith("out_") or p.startswith(".out_")]
        assert leftovers == [], (name, leftovers)


def test_truth_of_other_shape_is_rejected(tmp_path, pair, capsys):
    _, inp, _ = pair
    t = tmp_path / "t.npy"
    np.save(t, np.random.default_rng(0).random((2, 40, 40)))
    out = tmp_path / "x.h5"
    assert main(["separate", inp, "-o", str(out), "--truth", str(t), "--epochs", "2", "--no-progress"]) == 2
    assert "t.npy" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("flags,says", [
    (["--filters", "dip"], "--filters sets the ghost filters of the learnable mixing: add --method paper"),
    (["--method", "paper", "--mixing-iters", "10"], "--mixing-sigmas/--mixing-iters/--mixing-blur set the mixing "
                                                    "estimate of --method estimate"),
    (["--gamma-excl", "auto"], "--gamma-excl auto chooses the exclusion weight of the learnable mixing "
                               r"\(--method paper\)"),
    (["--select", "crosstalk"], "select='crosstalk' needs method='paper'"),
])
def test_flags_of_the_other_method_are_refused_before_anything_runs(tmp_path, pair, capsys, flags, says):
    _, inp, _ = pair
    assert main(["separate", inp, "-o", str(tmp_path / "x.h5"), "--epochs", "2", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["in.npy", "truth.npy"]


@pytest.mark.parametrize("flag,says", [("--schedule", "--schedule was replaced by --method"),
                                       ("--mixing", "--mixing was replaced by --method"),
                                       ("--kernel-size", "--kernel-size was removed: the option failed validation"),
                                       ("--exclusion-input", "set learned.exclusion_input in a --config file")])
def test_flags_of_older_versions_say_what_replaced_them(tmp_path, pair, capsys, flag, says):
    _, inp, _ = pair
    with pytest.raises(SystemExit) as exc:
        main(["separate", inp, "-o", str(tmp_path / "x.h5"), flag, "paper"])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not re.search(re.escape(flag) + r"(?![-\w])", main_help(capsys))  # hidden from --help


def main_help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["separate", "--help"])
    return capsys.readouterr().out


def test_config_of_an_older_version_names_the_key_and_its_replacement(tmp_path, pair, capsys):
    _, inp, _ = pair
    cfg = tmp_path / "old.json"
    cfg.write_text(json.dumps({"separation": {"epochs": 2, "mixing_iters": 10}}))
    assert main(["separate", inp, "-o", str(tmp_path / "x.h5"), "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "old.json" in err and "'mixing_iters' is now estimate.iters" in err
    # the groups are nested tables; flags win over the config
    cfg.write_text(json.dumps({"separation": {"epochs": 2, "method": "paper", "learned": {"filters": "dip",
                                                                                         "weight_reg": 0.25}}}))
    out = str(tmp_path / "y.h5")
    assert main(["separate", inp, "-o", out, "--config", str(cfg), "--filters", "kernel", "--no-progress"]) == 0
    learned = read_separation_result(out)["config"]["learned"]
    assert learned["filters"] == "kernel" and learned["weight_reg"] == 0.25
