"""The one atomic file writer of ptycho_ddip, and the output-path checks made before a long computation.

Every output (HDF5, TIFF, PNG, JSON, checkpoints) is written to a temporary file beside the target,
``.NAME.tmp-<pid>-<random>SUFFIX``, which is renamed onto the target once complete: a crash never leaves a partial
file at the target, and an existing file is never replaced without ``overwrite``. Temporary files are created with
mode 0666 minus the umask, like any file the user's shell would create (``tempfile.mkstemp`` would give 0600, which
colleagues sharing a group directory cannot read). A temporary file left by a killed process (``kill -9``) is
removed the next time the same target is written, once its process is gone.

This module imports neither numpy nor torch nor h5py: physics and the separation engine can use it.
"""
from __future__ import annotations

import errno
import os
import pathlib
from typing import Any, Sequence

__all__ = ["InputError", "check_output_path", "atomic_write", "atomic_group", "remove_stale_temps"]


class InputError(ValueError):
    """A file or value given to ptycho_ddip is unusable.

    The message names the offending file (and dataset path, where there is one) and says how to fix it.
    """


def _exists_msg(out: os.PathLike | str) -> str:
    return f"{os.fspath(out)} exists; pass --overwrite to replace it or choose another -o"


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> pathlib.Path:
    """Check that ``path`` may be written; call it before a long computation.

    Checks that the parent is an existing directory in which a file can be created (a probe file is created and
    removed), that ``path`` is not a directory, and that it does not exist unless ``overwrite``.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    InputError
        The parent is missing, is not a directory or is not writable, or ``path`` is a directory.
    """
    out = pathlib.Path(path)
    parent = out.parent if str(out.parent) else pathlib.Path(".")
    if not parent.is_dir():
        for above in [parent, *parent.parents]:
            if above.exists() and not above.is_dir():
                raise InputError(f"{os.fspath(path)}: '{above}' is a file, not a directory. Choose another -o.")
        raise InputError(f"{os.fspath(path)}: the directory '{parent}' does not exist. Create it first or choose "
                         f"another -o.")
    if out.is_dir():
        raise InputError(f"{os.fspath(path)}: is a directory. Give a file name with -o.")
    if out.exists() and not overwrite:
        raise FileExistsError(_exists_msg(path))
    try:
        _remove(_reserve_temp(out))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise InputError(f"{os.fspath(path)}: cannot write in '{parent}' ({reason}). Choose a writable -o.") from None
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def remove_stale_temps(out: str | os.PathLike[str]) -> None:
    """Remove temporary files of ``out`` left by processes that no longer run (e.g. killed while writing)."""
    out = pathlib.Path(out)
    parent = out.parent if str(out.parent) else pathlib.Path(".")
    prefix = f".{out.name}.tmp-"
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            _remove(parent / name)


def _reserve_temp(out: pathlib.Path) -> pathlib.Path:
    """Create an empty, uniquely named temporary file beside ``out`` (permissions follow the umask)."""
    parent = out.parent if str(out.parent) else pathlib.Path(".")
    for _ in range(100):
        tmp = parent / f".{out.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}{out.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OSError(errno.EEXIST, f"{out}: could not create a temporary file in '{parent}'")  # pragma: no cover


def _remove(path: os.PathLike | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync(path: pathlib.Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync
        pass
    finally:
        os.close(fd)


def _commit(tmp: pathlib.Path, out: pathlib.Path, overwrite: bool) -> None:
    """Move a finished temporary file onto ``out``; without overwrite never replace an existing file."""
    if not tmp.exists():
        raise FileNotFoundError(f"{out}: the temporary file {tmp.name} was removed before it could be renamed")
    _sync(tmp)
    if overwrite:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # atomic and fails if out exists
    except FileExistsError:
        _remove(tmp)
        raise FileExistsError(_exists_msg(out)) from None
    except OSError:  # file system without hard links: check, then rename
        if out.exists():
            _remove(tmp)
            raise FileExistsError(_exists_msg(out)) from None
        os.replace(tmp, out)
        return
    _remove(tmp)


class atomic_group:  # noqa: N801 - used as a function-like context manager
    """Write several files atomically: all temporaries are written first, then renamed together.

    Yields the list of temporary paths (same directory and suffix as each target); on an exception every temporary
    is deleted and the exception propagates.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], overwrite: bool = False) -> None:
        self.outs = [check_output_path(p, overwrite) for p in paths]
        self.overwrite = overwrite
        self.tmps: list[pathlib.Path] = []

    def __enter__(self) -> list[pathlib.Path]:
        try:
            for out in self.outs:
                remove_stale_temps(out)
                self.tmps.append(_reserve_temp(out))
        except BaseException:
            self._cleanup()
            raise
        return list(self.tmps)

    def _cleanup(self) -> None:
        for tmp in self.tmps:
            _remove(tmp)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None:
            self._cleanup()
            return False
        try:
            if not self.overwrite:
                for out in self.outs:
                    if out.exists():
                        raise FileExistsError(_exists_msg(out))
            for tmp, out in zip(self.tmps, self.outs):
                _commit(tmp, out, self.overwrite)
        finally:
            self._cleanup()
        return False


class atomic_write:  # noqa: N801 - used as a function-like context manager
    """Context manager for writing ``path`` atomically.

    Yields a temporary path in the same directory with the same suffix (``.OUT.h5.tmp-<pid>-<random>.h5``); on normal
    exit the temporary file is renamed onto ``path`` (re-checking ``overwrite``), on an exception it is deleted and the
    exception propagates. Nothing partial ever appears at ``path``.

    Raises
    ------
    FileExistsError
        ``path`` exists (on entry or when committing) and ``overwrite`` is False.
    InputError
        The parent directory does not exist or is not writable.

    Examples
    --------
    >>> with atomic_write("out.npy") as tmp:  # doctest: +SKIP
    ...     numpy.save(tmp, array)
    """

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        self._group = atomic_group([path], overwrite)

    def __enter__(self) -> pathlib.Path:
        return self._group.__enter__()[0]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return self._group.__exit__(exc_type, exc, tb)
