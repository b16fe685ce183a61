"""Test-wide settings: the device the device-aware tests run on.

``PTYCHO_DDIP_TEST_DEVICE`` (default ``"cpu"``) names the device that tests which take one pass to the engine:
``TEST_DEVICE`` for module-level option dicts, or the ``device`` fixture. With ``cuda`` (or ``cuda:N``):

* the run stops at once if CUDA is missing (a GPU run that silently tested the CPU would pass for the wrong reason);
* ``torch.use_deterministic_algorithms(True, warn_only=True)`` (and ``CUBLAS_WORKSPACE_CONFIG``) makes the ops that
  have a deterministic CUDA kernel use it (``index_select``'s backward in the reconstructor, cuDNN convolutions), so
  a reconstruction resumed from a checkpoint equals the uninterrupted one bit for bit, as on the CPU;
* two DDIP fits of the same options are still not bit-identical on CUDA: the backward passes of reflection padding
  and bilinear up-sampling accumulate with atomic adds (no deterministic CUDA kernel), and the fit amplifies those
  rounding differences. :func:`assert_same_fit` compares such pairs exactly on the CPU and within a stated
  tolerance on CUDA, and reports the measured difference as a warning.

Tests that do not name a device use the library's ``"auto"``, which is CUDA on a machine that has it, whatever this
variable says. Unset, every test behaves as before.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

TEST_DEVICE = os.environ.get("PTYCHO_DDIP_TEST_DEVICE", "").strip() or "cpu"
ON_CUDA = TEST_DEVICE.startswith("cuda")

#: on CUDA, same-option DDIP fits agree to this fraction of (|value| + range) (see :func:`assert_same_fit`)
CUDA_FIT_TOLERANCE = 1e-2

if ON_CUDA:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    import torch

    if not torch.cuda.is_available():
        raise pytest.UsageError(f"PTYCHO_DDIP_TEST_DEVICE={TEST_DEVICE} but torch.cuda.is_available() is False")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
elif TEST_DEVICE != "cpu":
    raise pytest.UsageError(f"PTYCHO_DDIP_TEST_DEVICE must be cpu, cuda or cuda:N, got {TEST_DEVICE!r}")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of tens of seconds (long fits, the pipeline end to end); "
                                       "deselect with -m 'not slow' for a quick run")
    config.addinivalue_line("markers", "mpi: a multi-rank test (run under mpiexec -n 2; skipped in a plain run)")
    if ON_CUDA:
        config.addinivalue_line("filterwarnings", "ignore:.*does not have a deterministic implementation")


def pytest_report_header(config):
    if ON_CUDA:
        import torch

        return (f"ptycho_ddip test device: {TEST_DEVICE} ({torch.cuda.get_device_name(torch.device(TEST_DEVICE))}, "
                f"torch {torch.__version__}, deterministic algorithms where available)")
    return f"ptycho_ddip test device: {TEST_DEVICE}"


@pytest.fixture
def device() -> str:
    """The device of the device-aware tests (``PTYCHO_DDIP_TEST_DEVICE``, default ``"cpu"``)."""
    return TEST_DEVICE


def assert_same_fit(actual, desired, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Two fits of the same options (a rerun, a resumed run, another code path): on the CPU equal exactly (or to
    ``rtol``/``atol`` where given); on CUDA within ``CUDA_FIT_TOLERANCE`` x (|desired| + its range), the range taken
    per column for 2-D arrays (loss tables: epoch, total, mismatch, ...), over the whole array otherwise. The
    measured difference is reported as a warning (module docstring).
    """
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    if not ON_CUDA:
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(actual, desired)
        else:
            np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)
        return
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    span = np.ptp(desired, axis=0) if desired.ndim == 2 else np.ptp(desired)
    bound = CUDA_FIT_TOLERANCE * (np.abs(desired) + span)
    diff = np.abs(actual - desired)
    worst = float(np.max(diff / np.where(bound > 0, bound, np.inf), initial=0.0))
    warnings.warn(f"CUDA fit difference: {worst:.2e} of the tolerance ({CUDA_FIT_TOLERANCE:g} x (|value| + range)), "
                  f"max |difference| {float(np.max(diff, initial=0.0)):.3g}", UserWarning, stacklevel=2)
    assert worst <= 1.0 and np.array_equal(np.isfinite(actual), np.isfinite(desired)), \
        f"CUDA fits differ by {worst:.3g} x the tolerance"


def reconstruct_on_thread_ranks(dataset, options, size: int = 2, timeout_s: float = 60.0) -> list:
    """``reconstruct`` run as ``size`` ranks on threads of this process, with an in-process gradient all-reduce (each
    rank's tensors replaced by the sum over ranks, as MPI Allreduce does): the data-parallel path without mpiexec.
    Returns the ranks' results in rank order."""
    import threading

    from ptycho_ddip.multislice.reconstruct import reconstruct

    barrier, buffers, results = threading.Barrier(size), {}, {}

    def allreduce_for(rank):
        def allreduce(tensors):
            buffers[rank] = [t.clone() for t in tensors]
            barrier.wait()
            sums = [sum(buffers[r][i] for r in range(size)) for i in range(len(tensors))]
            barrier.wait()
            for t, s in zip(tensors, sums):
                t.copy_(s)
        return allreduce

    def run(rank):
        results[rank] = reconstruct(dataset, options, progress=False, rank=rank, size=size,
                                    grad_allreduce=allreduce_for(rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return [results[r] for r in range(size)]
