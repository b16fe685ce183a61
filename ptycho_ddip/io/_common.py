"""Constants and small helpers shared by the io modules (no file I/O of their own)."""
from __future__ import annotations

import os
from collections.abc import Sequence

from ..atomic import InputError


HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".cxi")
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
LOSS_COLUMNS = ("epoch", "total", "mismatch", "exclusion", "weight")
PARTS = ("phase", "magnitude", "real", "imag")

_SEPARATION_RESERVED = ("inputs", "separated", "alpha", "filters", "loss", "mean", "std", "monitor")
_RECONSTRUCTION_RESERVED = ("object", "probe", "positions", "loss")


def _name(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def _check_name(name: str, reserved: Sequence[str], file: str, what: str) -> str:
    name = str(name)
    if not name or "/" in name or name in reserved or name.startswith("."):
        raise InputError(f"{file}: cannot store {what} named {name!r}; names must be non-empty, contain no '/' and "
                         f"not be one of {', '.join(reserved)}. Rename it.")
    return name
