"""What a newcomer meets first: every help page renders, checkpoints work from the command line, bad input and
Ctrl-C give one line (no traceback, nothing written), outputs honour the umask and leave no litter, and a pipeline
directory is tied to its dataset's content."""
import glob
import importlib
import json
import os
import stat

import numpy as np
import pytest
import torch

from ptycho_ddip.cli import COMMANDS, build_parser, main
from ptycho_ddip.io import read_separation_result
from ptycho_ddip.phantoms import blend, make_phantom

FAST = ["--mixing-iters", "20", "--threads", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture()
def files(tmp_path):
    b = blend(make_phantom("au-nio", (40, 40), seed=1).normalized())
    np.save(tmp_path / "good.npy", b.inputs)
    np.save(tmp_path / "s1.npy", b.inputs[0])
    return tmp_path


def _no_output(tmp_path, stem="o"):
    return not glob.glob(str(tmp_path / f"{stem}*")) and not glob.glob(str(tmp_path / f".{stem}*"))


def _messages(stderr: str) -> list:
    """The tool's own lines on stderr (progress lines aside); a traceback fails the test."""
    assert "Traceback" not in stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("ptycho-ddip ")]


def test_every_subcommand_help_renders(capsys):
    build_parser()
    assert set(COMMANDS) >= {"simulate", "reconstruct", "separate", "pipeline", "info"}
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: ptycho-ddip " + name), name


def test_separate_checkpoint_resume_and_ctrl_c_from_the_command_line(files, capsys, monkeypatch):
    """--checkpoint-every writes OUT.h5.ckpt; Ctrl-C prints one line and exits 130; --resume finishes the run with
    the same result as an uninterrupted one (one thread: bit for bit) and removes the checkpoint."""
    engine = importlib.import_module("ptycho_ddip.separation.engine")

    good = str(files / "good.npy")
    full = str(files / "full.h5")
    assert main(["separate", good, "-o", full, "--epochs", "6", *FAST]) == 0
    out = str(files / "o.h5")
    real_save = engine.save_checkpoint
    saves = []

    def save_then_interrupt(obj, path):
        real_save(obj, path)
        saves.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "save_checkpoint", save_then_interrupt)
    capsys.readouterr()
    assert main(["separate", good, "-o", out, "--epochs", "6", "--checkpoint-every", "3", *FAST]) == 130
    err = _messages(capsys.readouterr().err)
    assert saves == [out + ".ckpt"] and os.path.exists(out + ".ckpt") and not os.path.exists(out)
    assert len(err) == 1 and "checkpoint at" in err[0] and "--resume" in err[0], err
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    assert main(["separate", good, "-o", out, "--epochs", "6", "--checkpoint-every", "3", "--resume", *FAST]) == 0
    assert not os.path.exists(out + ".ckpt")
    np.testing.assert_array_equal(read_separation_result(out)["separated"], read_separation_result(full)["separated"])


def test_ctrl_c_without_checkpoints_says_how_to_make_runs_resumable(files, capsys, monkeypatch):
    sep = importlib.import_module("ptycho_ddip.separation_files")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sep, "separate_files", interrupted)
    assert main(["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), *FAST]) == 130
    err = _messages(capsys.readouterr().err)
    assert len(err) == 1 and "--checkpoint-every" in err[0]


@pytest.mark.parametrize("value", [20.7, True, "many"])
def test_config_values_of_the_wrong_type_name_the_file_and_the_key(files, capsys, value):
    cfg = files / "cfg.json"
    cfg.write_text(json.dumps({"epochs": value}))
    assert main(["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), "--config", str(cfg), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "cfg.json" in err and "epochs" in err and "integer" in err and "\n" not in err
    assert _no_output(files)


def test_missing_cuda_is_one_line_before_anything_runs(files, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), *FAST[:-2], "--device", "cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "cuda" in err and "--device cpu" in err and "\n" not in err
    assert _no_output(files)


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b"hello\n", "not a .npy file"),
                                           (None, "truncated or")])
def test_bad_npy_files_give_one_line(files, capsys, content, says):
    bad = files / "bad.npy"
    if content is None:  # a truncated file: a valid header, data cut short
        bad.write_bytes((files / "good.npy").read_bytes()[:200])
        says = "bad.npy"
    else:
        bad.write_bytes(content)
    assert main(["separate", str(bad), "-o", str(files / "o.h5"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.npy" in err and "\n" not in err and "Traceback" not in err
    assert says.split(" or")[0] in err or says == "bad.npy"
    assert _no_output(files)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc as an unwritable directory")
def test_unwritable_output_place_is_refused_before_fitting(files, capsys):
    assert main(["separate", str(files / "good.npy"), "-o", "/proc/o.h5", *FAST]) == 2
    assert "cannot write in '/proc'" in capsys.readouterr().err


def test_output_under_a_regular_file_says_so(files, capsys):
    assert main(["separate", str(files / "good.npy"), "-o", str(files / "good.npy" / "o.h5"), *FAST]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_identical_inputs_are_refused_and_unfitting_ghost_kinds_warn(files, capsys):
    s1 = str(files / "s1.npy")
    assert main(["separate", s1, s1, "-o", str(files / "o.h5"), *FAST]) == 2
    assert "nearly identical" in capsys.readouterr().err
    # the strong slice downstream of the weak one: ghost kinds given the wrong way round for this order warn (the
    # default direct model needs no kinds and does not)
    b = blend(make_phantom("au-nio", (64, 64), seed=0).normalized())
    np.save(files / "swapped.npy", b.inputs[::-1].copy())
    args = ["separate", str(files / "swapped.npy"), "--epochs", "0", "--mixing-iters", "400", "--threads", "1",
            "--no-progress", "--device", "cpu"]
    assert main(args + ["-o", str(files / "w.h5"), "--ghost-kinds", "lowpass,highpass"]) == 0
    err = capsys.readouterr().err
    assert "warning: the estimated mixing removes little shared structure" in err and "--ghost-kinds" in err
    assert main(args + ["-o", str(files / "d.h5")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_printed_weights_are_each_slices_own_share(files, capsys):
    assert main(["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), "--epochs", "0", *FAST]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("wrote")][0]
    alpha = read_separation_result(str(files / "o.h5"))["alpha"]
    own = json.loads(line.split("own-signal share per slice = ")[1].split(" (")[0])
    assert own == pytest.approx([alpha[0], 1 - alpha[1]], abs=1e-4)
    assert "the paper's alpha_1, alpha_2" in line


def test_outputs_follow_the_umask_and_killed_writers_leave_no_temporaries(files):
    from ptycho_ddip.atomic import atomic_write

    dead = files / ".o.h5.ckpt.tmp-999999999-dead.ckpt"  # a temporary of a writer killed with -9 (no such pid)
    dead.write_bytes(b"partial")
    old = os.umask(0o022)
    try:
        assert main(["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), "--epochs", "2",
                     "--checkpoint-every", "1", *FAST]) == 0
        with atomic_write(files / "x.ckpt") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("o.h5", "o.png", "o_separated.tiff", "x.ckpt"):
        assert stat.S_IMODE(os.stat(files / name).st_mode) == 0o644, name
    assert not dead.exists()
    assert not [n for n in os.listdir(files) if ".tmp-" in n]


def test_a_sweep_says_what_it_wrote(files, capsys):
    assert main(["separate", str(files / "good.npy"), "-o", str(files / "sw.h5"), "--method", "paper",
                 "--gamma-excl", "0.1,0.2", "--epochs", "2", *FAST[2:]]) == 0  # FAST[2:]: no mixing estimate
    out = capsys.readouterr().out
    assert "wrote 2 results" in out and "sw_sweep.png" in out


def test_a_pipeline_directory_is_tied_to_its_datasets_content_not_its_path(tmp_path, capsys):
    """Regenerating the dataset in place is refused (no stale "done before, skipped"); the same content under
    another name resumes; a run that fails on bad data leaves no empty output directory behind."""
    import h5py

    from ptycho_ddip.io import write_dataset
    from ptycho_ddip.multislice.simulate import simulate
    from ptycho_ddip.pipeline import run_pipeline

    def make(seed, path):
        write_dataset(path, simulate(shape=(48, 48), probe_shape=(16, 16), probe="gaussian", probe_fwhm_m=60e-9,
                                     step_px=8.0, dose=1e4, seed=seed), overwrite=True)

    opts = {"pass1": {"epochs": 1, "batch_size": 8, "device": "cpu"},
            "separation": {"epochs": 1, "threads": 1, "device": "cpu", "estimate": {"iters": 10}},
            "pass2": {"epochs": 1, "batch_size": 8, "device": "cpu"}}
    data, run = str(tmp_path / "data.h5"), str(tmp_path / "run")
    make(0, data)
    assert run_pipeline(data, run, opts, progress=False)["ran"] == ["pass1", "separation", "pass2", "report"]
    os.rename(data, tmp_path / "renamed.h5")
    assert run_pipeline(str(tmp_path / "renamed.h5"), run, opts, progress=False)["ran"] == []
    make(1, data)  # `simulate -o data.h5 --seed 1 --overwrite`
    (tmp_path / "p.json").write_text(json.dumps(opts))
    assert main(["pipeline", data, "-o", run, "--config", str(tmp_path / "p.json"), "--no-progress"]) == 2
    assert "has changed since" in capsys.readouterr().err
    with h5py.File(data, "a") as h5:  # every probe window outside the object
        h5["metadata/probe_pos_px"][...] += 1000.0
    fresh = tmp_path / "fresh"
    assert main(["pipeline", data, "-o", str(fresh), "--device", "cpu", "--no-progress"]) == 2
    assert "outside" in capsys.readouterr().err and not fresh.exists()


def test_a_numbered_gpu_is_a_valid_reconstruction_device():
    """``cuda:0`` crashed the reconstruction options on the first GPU run (found by benchmarks/cuda_check.py)."""
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions

    assert ReconstructionOptions(device="cuda:1").device == "cuda:1"
    for bad in ("cuda:x", "gpu"):
        with pytest.raises(ValueError, match="device"):
            ReconstructionOptions(device=bad)


def test_epochs_0_and_the_help_texts_need_no_warnings_or_equals_signs(files, capsys):
    """--epochs 0 draws its figure without a matplotlib warning (an empty legend used to warn), and the help of a
    flag that takes a negative number says to use the = form."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["separate", str(files / "good.npy"), "-o", str(files / "o.h5"), "--epochs", "0", *FAST]) == 0
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "--spacing-m=-1e-6" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")
