"""Device and CPU-thread selection shared by the reconstructor and the separation engine.

Oversubscribed threads make small machines very slow (a 2-core container that reports the host's 64 CPUs can run
30x slower), so the default thread count is the number of CPUs this process may actually use: the cgroup CPU quota
and the affinity mask, divided among the MPI ranks that share the node.
"""
from __future__ import annotations

import math
import os

import torch

from .atomic import InputError

_LOCAL_SIZE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE",
                    "SLURM_NTASKS_PER_NODE", "PMI_LOCAL_SIZE")


def usable_cpus() -> int:
    """CPUs this process may use: min(affinity mask, cgroup v2/v1 quota), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = None
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            q, period = fh.read().split()[:2]
            if q != "max":
                quota = int(q) / int(period)
    except (OSError, ValueError):
        try:
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fq, open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fp:
                q = int(fq.read())
                if q > 0:
                    quota = q / int(fp.read())
        except (OSError, ValueError):
            pass
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def local_ranks() -> int:
    """MPI ranks on this node, from the launcher's environment (1 when not under MPI)."""
    for var in _LOCAL_SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count; None = usable CPUs / local MPI ranks (unless OMP_NUM_THREADS is set).

    Returns the thread count in force.
    """
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, usable_cpus() // local_ranks())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(int(threads))
    return int(threads)


def resolve_device(device: str = "auto", rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:(rank % device_count)`` when CUDA is available, else CPU; ``"cuda"`` likewise but
    raises :class:`ptycho_ddip.atomic.InputError` (exit status 2 on the command line) when CUDA is missing."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but torch.cuda.is_available() is False; use --device cpu "
                         f"(or auto), or install the CUDA build of torch")
    if device == "cuda":
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}")
    return torch.device(device)
