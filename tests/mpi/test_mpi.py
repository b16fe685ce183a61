"""MPI: communicator, data-parallel reconstruction, ensemble separation, pipeline, abort on error.

CI runs this directory as ``mpiexec -n 2 python -m pytest -q -p no:cacheprovider tests/mpi``. With one process (the
plain ``pytest tests`` run) the tests that need two ranks skip, the others run serially. Every rank runs every
test in the same order; collectives come before assertions so that a failing rank cannot leave the other waiting.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

from ptycho_ddip.cli import main
from ptycho_ddip.io import read_reconstruction, read_separation_result, write_dataset
from ptycho_ddip.parallel import get_comm, launched_under_mpi, members_for_rank

pytestmark = pytest.mark.mpi

torch.set_num_threads(1)

comm = get_comm()
needs_two = pytest.mark.skipif(comm.size < 2, reason="needs mpiexec -n 2 (or more)")
SMALL = dict(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=6.0, dose=1e5,
             seed=7, jitter_px=0.3)


@pytest.fixture()
def shared_dir():
    """A directory every rank sees (created by rank 0, removed after the test)."""
    path = comm.bcast(tempfile.mkdtemp(prefix="ptycho_mpi_") if comm.is_root else None)
    yield path
    comm.barrier()
    if comm.is_root:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def small():
    from ptycho_ddip.multislice.simulate import simulate

    return simulate(SMALL)


def _clean_env() -> dict:
    """The environment without any MPI launcher variables (a child process then starts serial or its own job)."""
    prefixes = ("PMI_", "PMIX_", "MPI_", "OMPI_", "HYDRA_", "MV2_", "I_MPI_", "PTYCHO_DDIP_MPI")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _main(argv) -> int:
    """cli.main; ranks > 0 leave an error that every rank raised with SystemExit(2) (rank 0 prints it once)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else shutil.which("mpiexec")


# ------------------------------------------------------------------------------------------------ communicator

def test_launch_detection_from_environment():
    assert not launched_under_mpi({})
    assert not launched_under_mpi({"PMI_SIZE": "1", "PMI_RANK": "0"})
    assert launched_under_mpi({"PMI_SIZE": "2"}) and launched_under_mpi({"OMPI_COMM_WORLD_SIZE": "4"})
    assert launched_under_mpi({"MPI_LOCALNRANKS": "2"}) and launched_under_mpi({"PMIX_RANK": "0"})
    assert not launched_under_mpi({"PMI_SIZE": "8", "PTYCHO_DDIP_MPI": "0"})
    assert launched_under_mpi({"PTYCHO_DDIP_MPI": "1"})
    assert members_for_rank(4, 0, 2) == [0, 2] and members_for_rank(4, 1, 2) == [1, 3]
    assert members_for_rank(1, 1, 2) == []


def test_serial_fallback_imports_no_mpi4py():
    if not comm.is_root:
        return
    code = ("import sys; from ptycho_ddip.parallel import get_comm; c = get_comm(); "
            "print(c.rank, c.size, 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "False"]


def test_allreduce_gather_bcast():
    r = comm.rank
    tensors = [torch.full((3, 2), float(r + 1)), torch.tensor([r + 0.5], dtype=torch.float64),
               torch.full((2,), complex(r, 1), dtype=torch.complex64)]
    comm.allreduce_sum_(tensors)
    gathered = comm.gather(r * 10)
    value = comm.bcast("root" if comm.is_root else None)
    n = comm.size
    assert torch.all(tensors[0] == sum(k + 1 for k in range(n))) and tensors[0].dtype == torch.float32
    assert float(tensors[1]) == pytest.approx(sum(k + 0.5 for k in range(n))) and tensors[1].dtype == torch.float64
    assert torch.allclose(tensors[2], torch.full((2,), complex(sum(range(n)), n), dtype=torch.complex64))
    assert value == "root"
    assert gathered == ([10 * k for k in range(n)] if comm.is_root else None)


def test_call_on_root_and_agree_raise_on_every_rank():
    def root_only():
        raise FileExistsError("out.h5 exists")

    with pytest.raises(FileExistsError, match="out.h5"):
        comm.call_on_root(root_only)

    def last_rank_fails():
        if comm.rank == comm.size - 1:
            raise ValueError(f"rank {comm.rank} failed")
        return comm.rank

    with pytest.raises(ValueError, match=f"rank {comm.size - 1} failed"):
        comm.agree(last_rank_fails)


def test_abort_on_error_stops_every_rank(tmp_path):
    """A rank that fails while the others wait in a collective stops the whole job (MPI_Abort), with its message."""
    launcher = _mpiexec()
    if launcher is None:
        pytest.skip("no mpiexec on PATH")
    if not comm.is_root:
        return
    script = tmp_path / "fail.py"
    script.write_text(
        "from ptycho_ddip.parallel import get_comm\n"
        "from ptycho_ddip.io import InputError\n"
        "comm = get_comm()\n"
        "with comm.abort_on_error('demo: error: '):\n"
        "    if comm.rank == 1:\n"
        "        raise InputError('bad.h5: broken; give a good file')\n"
        "    comm.barrier()  # rank 0 would wait here forever without the abort\n"
        "print('not reached')\n")
    out = subprocess.run([launcher, "-n", "2", sys.executable, str(script)], env=_clean_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "demo: error: bad.h5: broken; give a good file" in out.stderr
    assert "not reached" not in out.stdout


# ------------------------------------------------------------------------------------------------ reconstruction

@needs_two
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_data_parallel_reconstruction_equals_serial(small, dtype):
    """R ranks vs 1 rank, same seed and global batch (8 positions of 36, probe refined after 2 epochs, 6 epochs).

    complex128: every pixel of the whole object agrees to max |dO| / |O| < 1e-5 (measured 8e-14 with 2 ranks).
    complex64: inside the region lit by > 5 % of the peak summed probe intensity (48 % of the pixels) the relative
    norm ||dO|| / ||O|| is < 1e-5 (measured 1.0e-6); the worst single pixel there is < 1e-4 (measured 3.3e-5:
    where gradients are tiny, Adam divides float32 summation-order noise by its own RMS). Loss histories agree to
    1e-5 (measured 8e-7 / 1.5e-15).
    """
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, reconstruct
    from ptycho_ddip.multislice.xrf import illuminated_mask

    opts = ReconstructionOptions(epochs=6, batch_size=8, device="cpu", dtype=dtype, optimize_probe=True,
                                 probe_delay_epochs=2, seed=1)
    par = reconstruct(small, opts, progress=False, rank=comm.rank, size=comm.size, grad_allreduce=comm.allreduce_sum_)
    ser = reconstruct(small, opts, progress=False)
    diff = np.abs(par.object - ser.object)
    np.testing.assert_allclose(par.loss, ser.loss, rtol=1e-5)
    # the probe: 1e-5 of its peak in complex128; in complex64 float32 summation-order noise, divided by Adam's RMS
    # where gradients are tiny, reaches 1.5e-4 of the peak (measured on a loaded 2-core machine): bound 1e-3
    probe_tol = 1e-5 if dtype == "complex128" else 1e-3
    assert np.abs(par.probe - ser.probe).max() < probe_tol * np.abs(ser.probe).max()
    if dtype == "complex128":
        assert (diff / np.abs(ser.object)).max() < 1e-5
    else:
        lit = illuminated_mask(small.positions_px, small.probe, small.object_shape, 0.05)
        assert np.linalg.norm(diff[:, lit]) < 1e-5 * np.linalg.norm(ser.object[:, lit])
        assert diff[:, lit].max() < 1e-4
    assert par.n_ranks == comm.size


def test_reconstruct_cli_only_root_writes(small, shared_dir):
    data, out = os.path.join(shared_dir, "d.h5"), os.path.join(shared_dir, "r.h5")
    if comm.is_root:
        write_dataset(data, small)
    comm.barrier()
    status = _main(["reconstruct", data, "-o", out, "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                    "--no-progress", "--threads", "1"])
    files = sorted(os.listdir(shared_dir))
    comm.barrier()
    mtime = os.path.getmtime(out)
    again = _main(["reconstruct", data, "-o", out, "--epochs", "2", "--no-progress"])  # exists: exit 2 everywhere
    missing = _main(["reconstruct", os.path.join(shared_dir, "nope.h5"), "-o", out + "x", "--no-progress"])
    assert status == 0
    assert files == ["d.h5", "r.h5", "r_magnitude.tiff", "r_phase.tiff"]
    res = read_reconstruction(out)
    assert res["n_ranks"] == comm.size and res["object"].shape == (2, 64, 64)
    assert again == 2 and missing == 2 and os.path.getmtime(out) == mtime
    assert not os.path.exists(out + "x")


# ------------------------------------------------------------------------------------------------ separation

@needs_two
def test_ensemble_over_ranks_equals_serial_ensemble(shared_dir):
    """4 members (seeds 3..6) spread over the ranks give exactly the serial ensemble of the same seeds."""
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import separate

    b = blend(make_phantom("au-nio", (40, 40), seed=2).normalized())
    inp, out = os.path.join(shared_dir, "in.npy"), os.path.join(shared_dir, "sep.h5")
    if comm.is_root:
        np.save(inp, b.inputs)
    comm.barrier()
    status = _main(["separate", inp, "-o", out, "--ensemble", "4", "--epochs", "8", "--seed", "3", "--threads", "1",
                    "--device", "cpu", "--no-progress"])
    comm.barrier()
    assert status == 0
    if comm.is_root:
        par = read_separation_result(out)
        ser = separate(b.inputs, SeparationOptions(ensemble=4, epochs=8, seed=3, threads=1, device="cpu"),
                       progress=False)
        assert par["extra"]["members"].shape == (4, 2, 40, 40)
        np.testing.assert_allclose(par["extra"]["members"], ser.members, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(par["mean"], ser.separated, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(par["std"], ser.std, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(par["alpha"], ser.alpha, rtol=1e-6)


def test_sweep_over_ranks_equals_serial_sweep(shared_dir):
    """A 2 x 2 sweep spread over the ranks writes, on rank 0, exactly the serial results of every setting."""
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import separate

    b = blend(make_phantom("zp-nio", (40, 40), seed=1).normalized())
    inp, out = os.path.join(shared_dir, "in.npy"), os.path.join(shared_dir, "sw.h5")
    if comm.is_root:
        np.save(inp, b.inputs)
    comm.barrier()
    status = _main(["separate", inp, "-o", out, "--gamma-excl", "0.1,0.6", "--filters", "kernel,dip", "--epochs",
                    "4", "--seed", "1", "--threads", "1", "--device", "cpu", "--no-progress", "--method", "paper"])
    comm.barrier()
    assert status == 0
    if comm.is_root:
        for f in ("kernel", "dip"):
            for g in (0.1, 0.6):
                par = read_separation_result(os.path.join(shared_dir, f"sw_{f}_g{g:g}.h5"))
                ser = separate(b.inputs, SeparationOptions(method="paper", learned={"filters": f}, gamma_excl=g,
                                                           epochs=4, seed=1, threads=1, device="cpu"), progress=False)
                np.testing.assert_array_equal(par["separated"], ser.separated)
        assert len(json.loads(open(os.path.join(shared_dir, "sw_sweep.json")).read())["rows"]) == 4


# ------------------------------------------------------------------------------------------------ pipeline

@needs_two
def test_pipeline_under_mpi(small, shared_dir):
    """Data-parallel passes and the ensemble split; rank 0 writes everything; a rerun skips every stage."""
    from ptycho_ddip.multislice.reconstruct import reconstruct
    from ptycho_ddip.pipeline import PipelineOptions, run_pipeline

    data, outdir = os.path.join(shared_dir, "d.h5"), os.path.join(shared_dir, "run")
    if comm.is_root:
        write_dataset(data, small)
    comm.barrier()
    opts = PipelineOptions.from_dict({
        "pass1": {"epochs": 4, "batch_size": 8, "device": "cpu", "dtype": "complex128"},
        "separation": {"epochs": 10, "ensemble": 2, "threads": 1, "device": "cpu"},
        "pass2": {"epochs": 2, "batch_size": 8, "device": "cpu"}, "checkpoint_every": 2})
    first = run_pipeline(data, outdir, opts, progress=False)
    second = run_pipeline(data, outdir, opts, progress=False)
    serial_pass1 = reconstruct(small, opts.pass1, progress=False)
    assert first["ran"] == ["pass1", "separation", "pass2", "report"] and second["ran"] == []
    assert (first["metrics"] is not None) == comm.is_root
    if comm.is_root:
        p1 = read_reconstruction(os.path.join(outdir, "pass1.h5"))
        assert p1["n_ranks"] == comm.size
        assert np.abs(p1["object"] - serial_pass1.object).max() < 1e-5
        assert read_separation_result(os.path.join(outdir, "separation.h5"))["extra"]["members"].shape[0] == 2
        metrics = json.load(open(os.path.join(outdir, "metrics.json")))
        assert set(metrics["stages"]) == {"pass1", "separation", "pass2"}
        assert not [f for f in os.listdir(outdir) if ".ckpt" in f or ".tmp" in f]
