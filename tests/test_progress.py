"""Progress for batch jobs: plain lines (no carriage returns) when the stream is not a terminal or with
``--no-progress``; a tqdm bar on a terminal; nothing with progress=False."""
import io

import numpy as np
import pytest

from ptycho_ddip.progress import LineProgress, NullProgress, cli_progress, progress_bar, progress_iter, resolve_mode


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_non_tty_stream_gets_a_plain_line_every_tenth_and_at_the_end():
    log = io.StringIO()
    bar = progress_bar(95, "fit", True, stream=log)
    assert isinstance(bar, LineProgress)
    for k in range(95):
        bar.set_postfix(loss=f"{1.0 / (k + 1):.3g}", refresh=False)
        bar.update(1)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [int(line.split()[2].split("/")[0]) for line in lines] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    assert lines[0].startswith("fit: epoch 10/95 (11%), loss=0.1, ") and lines[0].endswith("left")
    assert "epochs/s" in lines[0] and lines[-1].endswith("in all")
    assert "loss=0.0105" in lines[-1]


def test_a_line_at_least_every_interval_and_on_close():
    now = [0.0]
    log = io.StringIO()
    bar = LineProgress(1000, "slow", stream=log, interval_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        now[0] += 61.0
        bar.update(1)
    assert len(log.getvalue().splitlines()) == 3
    assert "1 min 01 s/epoch" not in log.getvalue() and "61 s/epoch" in log.getvalue()
    bar.update(1)  # neither 10 % nor 60 s since the last line
    assert len(log.getvalue().splitlines()) == 3
    bar.close()  # the last count is always reported
    assert log.getvalue().splitlines()[-1].startswith("slow: epoch 4/1000")


def test_resumed_bar_counts_from_initial_and_update_by_several():
    log = io.StringIO()
    bar = progress_bar(100, "DDIP", "lines", initial=40, stream=log)
    for done in range(50, 101, 10):
        bar.update(done - bar.n)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("DDIP: epoch 50/100") and lines[-1].startswith("DDIP: epoch 100/100")
    assert len(lines) == 6


def test_modes():
    log, tty = io.StringIO(), _Tty()
    assert resolve_mode(True, log) == "lines" and resolve_mode(True, tty) == "bar"
    assert resolve_mode("lines", tty) == "lines" and resolve_mode("bar", log) == "bar"
    assert resolve_mode(False, tty) == "off"
    with pytest.raises(ValueError):
        resolve_mode("loud", log)
    assert isinstance(progress_bar(10, "x", False), NullProgress)
    bar = progress_bar(10, "x", True, stream=tty)
    assert type(bar).__name__ == "tqdm" or hasattr(bar, "format_dict")
    bar.close()
    assert cli_progress(True) == "lines" and cli_progress(False) == "auto"


def test_progress_iter_and_off_writes_nothing():
    log = io.StringIO()
    assert list(progress_iter(range(30), desc="mixing", enabled="lines", stream=log, unit="iteration")) == \
        list(range(30))
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("mixing: iteration 30/30")
    quiet = io.StringIO()
    list(progress_iter(range(30), enabled=False, stream=quiet))
    assert quiet.getvalue() == ""


@pytest.mark.filterwarnings("ignore:the estimated mixing removes little")
def test_separate_prints_plain_lines_when_stderr_is_captured(capsys):
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.separate import separate

    b = blend(make_phantom("au-nio", (32, 32)).normalized())
    separate(b.inputs, epochs=20, estimate={"iters": 10}, experimental={"log_every": 2}, progress=True, threads=1,
             device="cpu")
    err = capsys.readouterr().err
    assert "\r" not in err
    ddip = [line for line in err.splitlines() if line.startswith("DDIP: epoch")]
    assert ddip[-1].startswith("DDIP: epoch 20/20 (100%), loss=") and "alpha=" in ddip[-1]
    assert 2 <= len(ddip) <= 10
    assert any(line.startswith("mixing estimate: iteration 10/10") for line in err.splitlines())


def test_reconstruct_prints_plain_lines_and_nothing_without_progress(capsys):
    from ptycho_ddip.multislice.reconstruct import reconstruct
    from ptycho_ddip.multislice.simulate import simulate

    ds = simulate(shape=(48, 48), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=8)
    capsys.readouterr()
    res = reconstruct(ds, {"epochs": 3, "device": "cpu"}, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("reconstruct: epoch")]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert f"loss={res.loss[-1]:.4g}" in lines[-1]
    reconstruct(ds, {"epochs": 2, "device": "cpu"}, progress=False)
    assert "reconstruct: epoch" not in capsys.readouterr().err
    assert np.all(np.isfinite(res.loss))
