"""`reconstruct` refuses a zero object step, and tells the user on its first line when the dataset holds no probe."""
import dataclasses
import os

import pytest
import torch

from ptycho_ddip.cli import main
from ptycho_ddip.io import write_dataset
from ptycho_ddip.multislice._options import OptionsError
from ptycho_ddip.multislice.reconstruct import ReconstructionOptions

torch.set_num_threads(1)

FAST = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from ptycho_ddip.multislice.simulate import simulate

    d = tmp_path_factory.mktemp("inputs")
    ds = simulate(shape=(48, 48), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=8, dose=1e5,
                  seed=2)
    with_probe, without = str(d / "probe.h5"), str(d / "noprobe.h5")
    write_dataset(with_probe, ds)
    write_dataset(without, dataclasses.replace(ds, probe=None))
    return with_probe, without


def test_lr_object_zero_is_rejected(datasets, tmp_path, capsys):
    with pytest.raises(OptionsError, match="lr_object"):
        ReconstructionOptions(lr_object=0.0)
    out = str(tmp_path / "r.h5")
    assert main(["reconstruct", datasets[0], "-o", out, *FAST, "--lr-object", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr_object" in err[0] and "> 0" in err[0], err
    assert not os.path.exists(out)


def test_missing_probe_is_announced_on_the_first_line(datasets, tmp_path, capsys):
    assert main(["reconstruct", datasets[1], "-o", str(tmp_path / "a.h5"), *FAST]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "no metadata/probe" in first and "Gaussian" in first and "--optimize-probe" in first
    # refining the probe: still said, no suggestion
    assert main(["reconstruct", datasets[1], "-o", str(tmp_path / "b.h5"), *FAST, "--optimize-probe"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "no metadata/probe" in first and "--optimize-probe" not in first
    # a dataset with its probe: no notice
    assert main(["reconstruct", datasets[0], "-o", str(tmp_path / "c.h5"), *FAST]) == 0
    assert "metadata/probe" not in capsys.readouterr().out
