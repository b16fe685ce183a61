"""Sweeps over gamma_excl and filters, and the automatic gamma rule: settings, files, figure, table, MPI-free paths."""
import json
import os

import numpy as np
import pytest

from ptycho_ddip.cli import main
from ptycho_ddip.io import read_separation_result
from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.options import DEFAULT_GAMMA, SeparationOptions
from ptycho_ddip.separation.separate import separate
from ptycho_ddip.separation.sweep import (AUTO_GAMMAS, Setting, auto_gammas, choose_gamma, run_sweep, sweep_rows,
                                         sweep_settings)

from conftest import TEST_DEVICE, assert_same_fit


def test_settings_combine_filters_and_gammas():
    s = sweep_settings([0.1, 0.4], ["kernel", "dip"])
    assert s == [Setting("kernel", 0.1), Setting("kernel", 0.4), Setting("dip", 0.1), Setting("dip", 0.4)]
    assert sweep_settings([None], ["dip"]) == [Setting("dip", DEFAULT_GAMMA["dip"])]
    assert sweep_settings([None], ["estimate"]) == [Setting("estimate", 0.0)]
    assert Setting("kernel", 0.04).label == "kernel_g0.04"
    # --gamma-excl auto: candidates per filter type of the learnable mixing; none for the estimated mixing
    assert auto_gammas(SeparationOptions(method="paper", learned={"filters": "dip"})) == AUTO_GAMMAS["dip"]
    with pytest.raises(ValueError, match="--gamma-excl auto .* learnable mixing"):
        auto_gammas(SeparationOptions())


def test_choose_gamma_rules():
    rows = [{"gamma_excl": g, "mismatch": m, "crosstalk": x}
            for g, m, x in [(0.1, 1.0, 0.9), (0.2, 1.1, 0.4), (0.4, 1.45, 0.25), (1.0, 3.0, 0.3)]]
    assert choose_gamma(rows) == 0.4  # smallest crosstalk estimate
    rows[1]["crosstalk"] = 0.25  # a tie goes to the smaller gamma
    assert choose_gamma(rows) == 0.2
    assert choose_gamma(rows, rule="mismatch", tolerance=1.5) == 0.4
    assert choose_gamma(rows, rule="mismatch", tolerance=1.05) == 0.1
    with pytest.raises(ValueError):
        choose_gamma([])
    with pytest.raises(ValueError, match="rule"):
        choose_gamma(rows, rule="psnr")


def test_sweep_run_equals_single_runs_and_rows_have_metrics():
    b = blend(make_phantom("au-nio", (48, 48), seed=1).normalized())
    base = SeparationOptions(epochs=4, seed=2, device=TEST_DEVICE, method="paper",
                             learned={"exclusion_balance": True, "exclusion_input": 1.0})
    runs = run_sweep(b.inputs, base, sweep_settings([0.1, 0.8], ["kernel"]), truth=b.truth, progress=False)
    single = separate(b.inputs, base, gamma_excl=0.8, progress=False)
    assert_same_fit(runs[1][1].separated, single.separated)
    rows = sweep_rows(runs, b.truth, b.ghosts)
    assert [r["gamma_excl"] for r in rows] == [0.1, 0.8]
    assert all(np.isfinite(r["gsr2"]) and -1 <= r["corr1"] <= 1 for r in rows)
    assert all(r["crosstalk"] == pytest.approx(0.5 * (r["xt1"] + r["xt2"])) for r in rows)
    # a larger gamma weights exclusion more: the final exclusion term is not larger
    assert rows[1]["exclusion"] <= rows[0]["exclusion"] * 1.05


def test_cli_sweep_and_auto_write_every_output(tmp_path, capsys):
    b = blend(make_phantom("zp-nio", (48, 48), seed=0).normalized())
    inp, truth = tmp_path / "in.npy", tmp_path / "t.npy"
    np.save(inp, b.inputs)
    np.save(truth, b.truth)
    out = str(tmp_path / "s.h5")
    # a sweep over filter types compares the learnable mixing's filters: refused with the estimated mixing
    assert main(["separate", str(inp), "-o", out, "--gamma-excl", "0.05,0.5", "--filters", "kernel,dip",
                 "--epochs", "3", "--no-progress"]) == 2
    assert "--method paper" in capsys.readouterr().err
    assert not any(f.startswith("s_") for f in os.listdir(tmp_path))
    assert main(["separate", str(inp), "-o", out, "--gamma-excl", "0.05,0.5", "--filters", "kernel,dip",
                 "--method", "paper", "--epochs", "3", "--truth", str(truth), "--no-progress"]) == 0
    for label in ("kernel_g0.05", "kernel_g0.5", "dip_g0.05", "dip_g0.5"):
        res = read_separation_result(str(tmp_path / f"s_{label}.h5"))
        assert res["config"]["learned"]["filters"] == label.split("_")[0]
        assert res["config"]["gamma_excl"] == float(label.split("_g")[1])
    table = json.loads((tmp_path / "s_sweep.json").read_text())["rows"]
    assert len(table) == 4 and "gsr1" in table[0]
    assert os.path.getsize(tmp_path / "s_sweep.png") > 10000
    assert "| kernel | 0.05 |" in (tmp_path / "s_sweep.md").read_text()
    # the sweep refuses to overwrite
    assert main(["separate", str(inp), "-o", out, "--gamma-excl", "0.05,0.5", "--epochs", "3", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    # a sweep of the estimated mixing: one result per gamma, labelled by the method
    est = str(tmp_path / "e.h5")
    assert main(["separate", str(inp), "-o", est, "--gamma-excl", "0,0.2", "--epochs", "2", "--no-progress",
                 "--mixing-iters", "50"]) == 0
    assert read_separation_result(str(tmp_path / "e_estimate_g0.2.h5"))["config"]["select"] == "final"
    assert read_separation_result(str(tmp_path / "e_estimate_g0.h5"))["config"]["select"] == "loss"
    # --gamma-excl auto was validated on the learnable mixing only: refused with the estimated mixing, before
    # anything is fitted or written
    auto = str(tmp_path / "a.h5")
    assert main(["separate", str(inp), "-o", auto, "--gamma-excl", "auto", "--epochs", "3", "--no-progress"]) == 2
    assert "--gamma-excl auto chooses the exclusion weight of the learnable mixing" in capsys.readouterr().err
    assert not any(f.startswith("a") for f in os.listdir(tmp_path))
    assert main(["separate", str(inp), "-o", auto, "--gamma-excl", "auto", "--epochs", "3", "--no-progress",
                 "--method", "paper"]) == 0
    choice = json.loads((tmp_path / "a_auto.json").read_text())
    assert len(choice["rows"]) == 5 and all(np.isfinite(r["crosstalk"]) for r in choice["rows"])
    assert choice["gamma_excl"] == choose_gamma(choice["rows"])
    chosen = read_separation_result(auto)
    assert chosen["config"]["gamma_excl"] == choice["gamma_excl"]
    # the chosen run is the sweep's run of that gamma, not a refit, and every candidate's result is kept
    same = read_separation_result(str(tmp_path / f"a_kernel_g{choice['gamma_excl']:g}.h5"))
    np.testing.assert_array_equal(chosen["separated"], same["separated"])
    assert (tmp_path / "a_sweep.png").exists() and (tmp_path / "a.png").exists()
    assert main(["separate", str(inp), "-o", auto, "--gamma-excl", "auto", "--epochs", "3", "--no-progress",
                 "--method", "paper"]) == 2
    assert "--overwrite" in capsys.readouterr().err
