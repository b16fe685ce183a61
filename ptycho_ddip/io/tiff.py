"""TIFF output (float32, ImageJ-readable), written atomically."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import tifffile

from ..atomic import InputError, atomic_write
from ._common import _name


# ----------------------------------------------------------------------------------------------------------------------
# Atomic, no-overwrite writing
# ----------------------------------------------------------------------------------------------------------------------

def _write_tiff_file(file: str | os.PathLike[str], array: np.ndarray) -> None:
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if data.ndim not in (2, 3):
        raise InputError(f"{_name(file)}: cannot write an array of shape {data.shape} as TIFF; give a 2-D image or "
                         f"a 3-D stack (pages, H, W).")
    tifffile.imwrite(file, data, imagej=True, photometric="minisblack",
                     metadata={"axes": "ZYX" if data.ndim == 3 else "YX"})


def write_tiff(path: str | os.PathLike[str], array: np.ndarray, overwrite: bool = False) -> pathlib.Path:
    """Write a float32 TIFF atomically (ImageJ-readable; a 3-D array ``(pages, H, W)`` gives one page per slice).

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.tif``/``.tiff`` file.
    array : numpy.ndarray
        Real 2-D or 3-D array; converted to float32. A ``(1, H, W)`` stack is read back as ``(H, W)``.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    array = np.asarray(array)
    if np.iscomplexobj(array):
        raise InputError(f"{_name(path)}: TIFF holds real values; write the phase (numpy.angle) or magnitude "
                         f"(numpy.abs) of the complex array.")
    if array.ndim not in (2, 3):
        raise InputError(f"{_name(path)}: cannot write an array of shape {array.shape} as TIFF; give a 2-D image or "
                         f"a 3-D stack (pages, H, W).")
    with atomic_write(path, overwrite) as tmp:
        _write_tiff_file(tmp, array)
    return pathlib.Path(path)
