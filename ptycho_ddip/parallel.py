"""MPI for ptycho_ddip: one communicator object with a serial fallback.

:func:`get_comm` returns the process-wide :class:`Communicator`. It wraps ``mpi4py``'s ``COMM_WORLD`` only when the
process was started by an MPI launcher with more than one rank; otherwise it is a serial stand-in (rank 0 of 1) and
**mpi4py is not imported** (no MPI initialisation, no dependency). The launch is detected from the environment that
launchers set before Python starts:

=====================  =============================================================
``PMI_SIZE``           MPICH / Hydra, Intel MPI, Cray, ``srun --mpi=pmi2``
``OMPI_COMM_WORLD_SIZE``  Open MPI
``MV2_COMM_WORLD_SIZE``   MVAPICH2
``PMIX_SIZE`` / ``PMIX_RANK``  PMIx launchers (``srun --mpi=pmix``, ``prterun``)
``MPI_LOCALNRANKS``    MPICH / Hydra (ranks on this node)
=====================  =============================================================

``PTYCHO_DDIP_MPI=0`` forces the serial fallback, ``PTYCHO_DDIP_MPI=1`` forces ``import mpi4py`` (for launchers not
listed). A size read as 1 means serial.

Collectives used by the package:

* :meth:`Communicator.allreduce_sum_` sums a list of tensors across ranks **in place**: they are flattened into one
  contiguous buffer (promoted dtype, complex as real pairs), reduced with a single ``Allreduce`` and copied back.
  CUDA tensors are staged through host memory unless ``PTYCHO_DDIP_CUDA_AWARE_MPI=1`` says the MPI library reads
  device memory. This is the ``grad_allreduce`` hook of the reconstructor.
* :meth:`Communicator.ensemble_gather` builds the ``gather`` callable of
  :func:`ptycho_ddip.separation_files.separate_files` (member k on rank k % size, all members on rank 0).
* :meth:`Communicator.abort_on_error` (context manager or decorator): an exception on any rank prints the error on
  that rank and calls ``MPI_Abort``, so the other ranks stop instead of waiting forever in a collective.
* :meth:`Communicator.call_on_root`: run a check (e.g. "may the output be written?") on rank 0 and raise its
  exception on every rank, so that all ranks fail the same way and exit cleanly.

GPU ranks use ``cuda:(rank % device_count)`` (:func:`ptycho_ddip.runtime.resolve_device`).

Examples
--------
>>> comm = get_comm()          # serial here: no launcher variables
>>> comm.rank, comm.size, comm.is_root
(0, 1, True)
>>> import torch
>>> g = [torch.ones(3), torch.zeros(2, dtype=torch.float64)]
>>> comm.allreduce_sum_(g)[0].tolist()
[1.0, 1.0, 1.0]
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Any, Callable, Optional, Sequence

__all__ = ["Communicator", "EnsembleGather", "get_comm", "launched_under_mpi", "members_for_rank", "SERIAL"]

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_PRESENCE_VARS = ("PMIX_RANK",)

#: exit status of an aborted run whose error is a user error (bad input, existing output), as ``cli.main`` uses
USER_ERROR_STATUS = 2


def launched_under_mpi(environ: Optional[dict] = None) -> bool:
    """True when an MPI launcher started this process with more than one rank (see the module docstring)."""
    env = os.environ if environ is None else environ
    forced = env.get("PTYCHO_DDIP_MPI", "").strip().lower()
    if forced in ("0", "no", "false", "off"):
        return False
    if forced in ("1", "yes", "true", "on"):
        return True
    for var in _SIZE_VARS:
        value = env.get(var, "").strip()
        if value.isdigit() and int(value) > 1:
            return True
    return any(var in env for var in _PRESENCE_VARS) and not any(
        env.get(var, "").strip() == "1" for var in _SIZE_VARS)


def members_for_rank(n_members: int, rank: int, size: int) -> list:
    """Ensemble members fitted by ``rank``: k = rank, rank + size, ... (member k on rank k % size).

    >>> members_for_rank(5, 1, 2)
    [1, 3]
    """
    return list(range(int(rank), int(n_members), int(size)))


class Communicator:
    """The ranks of a run: ``rank``, ``size``, ``is_root`` and the collectives the package needs.

    Build it with :func:`get_comm`; ``Communicator(None)`` is the serial stand-in (rank 0 of 1, no MPI).

    Parameters
    ----------
    mpi_comm : an ``mpi4py.MPI.Comm`` or None (serial).
    """

    def __init__(self, mpi_comm: Any = None) -> None:
        self.mpi_comm = mpi_comm
        if mpi_comm is None:
            self.rank, self.size = 0, 1
        else:
            self.rank, self.size = int(mpi_comm.Get_rank()), int(mpi_comm.Get_size())

    # -------------------------------------------------------------------------------------------- basics
    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """More than one rank."""
        return self.size > 1

    def __repr__(self) -> str:
        kind = "MPI" if self.mpi_comm is not None else "serial"
        return f"Communicator({kind}, rank={self.rank}, size={self.size})"

    def barrier(self) -> None:
        if self.mpi_comm is not None:
            self.mpi_comm.Barrier()

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """``obj`` of rank ``root`` on every rank (pickled)."""
        return obj if self.mpi_comm is None else self.mpi_comm.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> Optional[list]:
        """List of every rank's ``obj`` (in rank order) on ``root``, None elsewhere (pickled)."""
        return [obj] if self.mpi_comm is None else self.mpi_comm.gather(obj, root=root)

    def allgather(self, obj: Any) -> list:
        return [obj] if self.mpi_comm is None else self.mpi_comm.allgather(obj)

    # -------------------------------------------------------------------------------------------- tensors
    def allreduce_sum_(self, tensors: Sequence[Any]) -> Sequence[Any]:
        """Sum torch tensors across ranks, in place, with one ``Allreduce`` on one contiguous buffer.

        The tensors may differ in shape, dtype (promoted to a common one for the reduction; complex tensors are
        reduced as real pairs) and device (CUDA tensors are staged through host memory unless
        ``PTYCHO_DDIP_CUDA_AWARE_MPI=1``). Returns ``tensors``. Serial: no-op.
        """
        if self.mpi_comm is None or not tensors:
            return tensors
        import torch

        flats = [torch.view_as_real(t).reshape(-1) if t.is_complex() else t.reshape(-1) for t in tensors]
        dtype = flats[0].dtype
        for f in flats[1:]:
            dtype = torch.promote_types(dtype, f.dtype)
        device = tensors[0].device
        if any(t.device != device for t in tensors):
            device = torch.device("cpu")
        buffer = torch.cat([f.detach().to(device=device, dtype=dtype) for f in flats])
        cuda_aware = os.environ.get("PTYCHO_DDIP_CUDA_AWARE_MPI", "") == "1"
        if buffer.is_cuda and cuda_aware:
            from mpi4py import MPI

            torch.cuda.synchronize(buffer.device)
            self.mpi_comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        else:
            host = buffer.cpu().contiguous() if buffer.is_cuda else buffer.contiguous()
            from mpi4py import MPI

            self.mpi_comm.Allreduce(MPI.IN_PLACE, host.numpy(), op=MPI.SUM)
            buffer = host.to(buffer.device) if buffer.is_cuda else host
        offset = 0
        with torch.no_grad():
            for t, f in zip(tensors, flats):
                n = f.numel()
                chunk = buffer[offset:offset + n]
                offset += n
                target = torch.view_as_real(t) if t.is_complex() else t
                target.copy_(chunk.view(target.shape))
        return tensors

    # -------------------------------------------------------------------------------------------- errors
    def abort(self, message: str = "", status: int = 1) -> None:
        """Print ``message`` on this rank and stop every rank (``MPI_Abort``); serial: ``sys.exit(status)``."""
        if message:
            print(message, file=sys.stderr, flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        if self.mpi_comm is None:
            sys.exit(status)
        self.mpi_comm.Abort(status)
        os._exit(status)  # MPI_Abort may return on this rank before the launcher kills it

    def abort_on_error(self, prefix: str = "", user_errors: tuple = (ValueError, FileExistsError)
                       ) -> "_AbortOnError":
        """Context manager / decorator: on more than one rank, an exception stops all ranks (``MPI_Abort``).

        The failing rank prints ``prefix + message`` (user errors, i.e. ``user_errors`` such as ``InputError``, in
        one line with status 2; anything else with its traceback and status 1). With one rank the exception
        propagates unchanged (``cli.main`` turns user errors into exit status 2).

        >>> with get_comm().abort_on_error("ptycho-ddip x: error: "):
        ...     pass
        """
        return _AbortOnError(self, prefix, user_errors)

    def call_on_root(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on rank 0 only; its return value, or its exception, reaches every rank.

        Use it for checks whose outcome every rank must share (an existing output, a completed stage), so that all
        ranks raise the same error and none waits in a later collective.
        """
        if self.mpi_comm is None:
            return fn(*args, **kwargs)
        outcome: tuple = (None, None)
        if self.is_root:
            try:
                outcome = (fn(*args, **kwargs), None)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                outcome = (None, _portable(exc))
        value, exc = self.bcast(outcome)
        if exc is not None:
            raise _mark_collective(exc)
        return value

    def agree(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on every rank; if it fails on any rank, raise the lowest failing rank's exception on all.

        Use it for the checks and reads before the collective work (options, input files), so that a bad input
        stops every rank cleanly (one error line, exit status 2) instead of leaving ranks in a collective.
        Returns this rank's value.
        """
        if self.mpi_comm is None:
            return fn(*args, **kwargs)
        value, error = None, None
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            error = _portable(exc)
        errors = self.allgather(error)
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise _mark_collective(first)
        return value

    # -------------------------------------------------------------------------------------------- ensembles
    def ensemble_gather(self, n_members: int) -> "EnsembleGather":
        """The ``gather`` of :func:`ptycho_ddip.separation_files.separate_files` for a ``n_members`` ensemble;
        its ``members`` attribute lists this rank's member indices."""
        return EnsembleGather(self, n_members)


class EnsembleGather:
    """Collect ensemble members fitted on several ranks, in member order, on rank 0.

    Member k is fitted on rank k % size (:func:`members_for_rank`). Calling the object with this rank's list of
    member outputs (in the order of ``members``) returns the list of all ``n_members`` outputs on rank 0 and None
    on the other ranks. Attributes: ``members``, ``rank``, ``size``, ``is_root`` (the interface ``separate_files``
    expects).
    """

    def __init__(self, comm: Communicator, n_members: int) -> None:
        if int(n_members) < 1:
            raise ValueError(f"an ensemble needs at least one member, got {n_members}")
        self.comm, self.n_members = comm, int(n_members)
        self.rank, self.size, self.is_root = comm.rank, comm.size, comm.is_root
        self.members = members_for_rank(self.n_members, self.rank, self.size)

    def __call__(self, outputs: Sequence[Any]) -> Optional[list]:
        outputs = list(outputs)
        if len(outputs) != len(self.members):
            raise ValueError(f"rank {self.rank} gives {len(outputs)} member outputs for members {self.members}")
        per_rank = self.comm.gather(outputs)
        if per_rank is None:
            return None
        ordered: list = [None] * self.n_members
        for r, outs in enumerate(per_rank):
            for k, out in zip(members_for_rank(self.n_members, r, self.size), outs):
                ordered[k] = out
        return ordered


class _AbortOnError(contextlib.ContextDecorator):
    def __init__(self, comm: Communicator, prefix: str, user_errors: tuple) -> None:
        self.comm, self.prefix, self.user_errors = comm, prefix, tuple(user_errors)

    def __enter__(self) -> "_AbortOnError":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None or self.comm.size == 1:
            return False
        if issubclass(exc_type, SystemExit) and exc.code in (None, 0):
            return False
        if getattr(exc, "ptycho_ddip_all_ranks", False):  # raised identically on every rank: exit cleanly
            if self.comm.is_root:
                return False  # the caller (cli.main) prints it once
            raise SystemExit(USER_ERROR_STATUS if issubclass(exc_type, self.user_errors) else 1)
        where = f"[rank {self.comm.rank}/{self.comm.size}] "
        if issubclass(exc_type, self.user_errors):
            message, status = f"{where}{self.prefix}{exc}", USER_ERROR_STATUS
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            message, status = f"{where}{self.prefix}{exc_type.__name__}: {exc}\n{text}", 1
        self.comm.abort(message + "\n(all ranks stopped with MPI_Abort)", status)
        return False  # pragma: no cover - Abort does not return


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to travel between ranks), else a RuntimeError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _mark_collective(exc: BaseException) -> BaseException:
    try:
        exc.ptycho_ddip_all_ranks = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions normally accept attributes
        pass
    return exc


SERIAL = Communicator(None)
_COMM: Optional[Communicator] = None


def get_comm() -> Communicator:
    """The process-wide communicator: MPI ``COMM_WORLD`` under an MPI launcher with > 1 rank, else :data:`SERIAL`.

    Raises
    ------
    RuntimeError
        Launched under MPI but mpi4py cannot be imported (the message says how to install it).
    """
    global _COMM
    if _COMM is None:
        if not launched_under_mpi():
            _COMM = SERIAL
        else:
            try:
                from mpi4py import MPI
            except ImportError as exc:
                raise RuntimeError("this process was started by an MPI launcher but mpi4py is missing; install it "
                                   "(laptop: pip install mpi4py mpich; cluster: MPICC=mpicc pip install "
                                   "--no-binary mpi4py mpi4py) or run without mpiexec") from exc
            world = MPI.COMM_WORLD
            _COMM = SERIAL if world.Get_size() == 1 else Communicator(world)
    return _COMM
