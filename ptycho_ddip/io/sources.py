"""Input sources: NPY, (multi-page) TIFF and HDF5 datasets named as FILE[:/dataset], read as real (N, H, W) stacks
with errors that name the file and the fix."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import tifffile

from ..atomic import InputError
from ._common import HDF5_SUFFIXES, NPY_SUFFIXES, PARTS, TIFF_SUFFIXES, _name


# ----------------------------------------------------------------------------------------------------------------------
# Source specifications and image reading
# ----------------------------------------------------------------------------------------------------------------------

def parse_source(spec: str) -> tuple[str, str | None]:
    """Split ``FILE.h5:/path/in/file`` into the file and the dataset path.

    Parameters
    ----------
    spec : str
        A file name, optionally followed by ``:`` and a dataset path when the file is HDF5 (suffixes
        ``.h5 .hdf5 .hdf .he5 .nxs .cxi``, any case).

    Returns
    -------
    file : str
        The file part, unchanged.
    dataset : str or None
        The dataset path, with a leading ``/`` added when missing; ``None`` when the spec names no dataset.

    Notes
    -----
    Only a colon right after an HDF5 suffix separates a dataset, so ``C:\\data\\x.h5:/obj``, ``../a/b.tiff`` and
    ``C:\\data\\x.npy`` are all split correctly.

    Examples
    --------
    >>> parse_source("rec.h5:/object")
    ('rec.h5', '/object')
    >>> parse_source("C:\\\\data\\\\phase.tiff")
    ('C:\\\\data\\\\phase.tiff', None)
    """
    spec = os.fspath(spec)
    lower = spec.lower()
    best = -1
    for suffix in HDF5_SUFFIXES:
        start = 0
        while True:
            i = lower.find(suffix + ":", start)
            if i < 0:
                break
            end = i + len(suffix)
            if best < 0 or end < best:
                best = end
            start = i + 1
    if best < 0:
        return spec, None
    file, dataset = spec[:best], spec[best + 1:]
    if not dataset:
        return file, None
    if not dataset.startswith("/"):
        dataset = "/" + dataset
    return file, dataset


def _suffix(file: str) -> str:
    return pathlib.Path(file).suffix.lower()


def _require_file(file: str, what: str = "input") -> None:
    if not os.path.exists(file):
        raise InputError(f"{file}: file not found. Check the path of the {what} (relative paths start in "
                         f"{os.getcwd()}).")
    if os.path.isdir(file):
        raise InputError(f"{file}: is a directory, not a file. Give the {what} file itself.")


def _open_h5(file: str, what: str = "input") -> h5py.File:
    _require_file(file, what)
    try:
        return h5py.File(file, "r")
    except OSError as exc:
        raise InputError(f"{file}: cannot be opened as HDF5 ({exc}). Give a valid HDF5 file, or a .npy / .tif "
                         f"file with the matching suffix.") from exc


def _list_datasets(h5: h5py.File) -> list[str]:
    names: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append("/" + name)

    h5.visititems(visit)
    return names


def _read_h5_dataset(file: str, dataset: str | None, preferred: str | None = None) -> tuple[np.ndarray, str]:
    """Read one dataset; without a dataset path use ``preferred`` if present, else the only dataset."""
    with _open_h5(file) as h5:
        present = _list_datasets(h5)
        shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "") if present else "(none)"
        if dataset is None:
            if preferred is not None and isinstance(h5.get(preferred), h5py.Dataset):
                dataset = "/" + preferred.lstrip("/")
            elif len(present) == 1:
                dataset = present[0]
            else:
                raise InputError(f"{file}: holds {len(present)} datasets ({shown}); say which one to read. "
                                 f"Give FILE.h5:/path/to/dataset")
        obj = h5.get(dataset)
        if obj is None:
            raise InputError(f"{file}: dataset '{dataset}' not found; datasets present: {shown}. "
                             f"Give FILE.h5:/path/to/dataset")
        if not isinstance(obj, h5py.Dataset):
            raise InputError(f"{file}: '{dataset}' is a group, not a dataset; datasets present: {shown}. "
                             f"Give FILE.h5:/path/to/dataset")
        return obj[()], dataset


def _read_npy(file: str) -> np.ndarray:
    _require_file(file)
    with open(file, "rb") as fh:
        magic = fh.read(6)
    if not magic:
        raise InputError(f"{file}: is empty. Give a file written by numpy.save.")
    if magic != b"\x93NUMPY":
        raise InputError(f"{file}: is not a .npy file (no NumPy header). Give a file written by numpy.save, or "
                         f"convert it to .npy, TIFF or HDF5.")
    try:
        return np.load(file, allow_pickle=False)
    except EOFError as exc:
        raise InputError(f"{file}: is truncated ({exc}). Write it again with numpy.save.") from exc
    except ValueError as exc:
        raise InputError(f"{file}: cannot be read as a numeric .npy array ({exc}). Save it with "
                         f"numpy.save(file, array) from a numeric array (no objects).") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot be read as .npy ({exc}). Give a file written by numpy.save.") from exc


def read_tiff(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a (multi-page) TIFF as stored.

    Parameters
    ----------
    path : str or os.PathLike
        The TIFF file.

    Returns
    -------
    numpy.ndarray
        The image data, in the stored dtype; a multi-page file gives ``(pages, H, W)``.
    """
    file = _name(path)
    _require_file(file)
    try:
        return np.asarray(tifffile.imread(file))
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise InputError(f"{file}: cannot be read as TIFF ({exc}). Give a valid (multi-page) TIFF file.") from exc


def _tiff_to_zyx(array: np.ndarray, file: str, tiff_axes: str) -> np.ndarray:
    if tiff_axes not in ("auto", "zyx", "yxz"):
        raise InputError(f"{file}: tiff_axes must be 'auto', 'zyx' or 'yxz', not {tiff_axes!r}.")
    if array.ndim != 3:
        return array
    if tiff_axes == "yxz" or (tiff_axes == "auto" and array.shape[2] <= 8 and array.shape[0] > 8
                              and array.shape[1] > 8):
        return np.ascontiguousarray(np.moveaxis(array, 2, 0))
    return array


def _load_source(spec: str, tiff_axes: str) -> tuple[np.ndarray, str]:
    """Load one source as an array; returns (array, display name)."""
    file, dataset = parse_source(spec)
    suffix = _suffix(file)
    if suffix in HDF5_SUFFIXES:
        array, dataset = _read_h5_dataset(file, dataset)
        return np.asarray(array), f"{file}:{dataset}"
    if suffix in NPY_SUFFIXES:
        return _read_npy(file), file
    if suffix in TIFF_SUFFIXES:
        return _tiff_to_zyx(read_tiff(file), file, tiff_axes), file
    _require_file(file)
    raise InputError(f"{file}: unknown file type '{suffix}'. Give an HDF5 file (FILE.h5:/dataset), a .npy file or "
                     f"a .tif/.tiff file.")


def _select_part(array: np.ndarray, name: str, part: str | None) -> np.ndarray:
    if part is not None and part not in PARTS:
        raise InputError(f"{name}: unknown part {part!r}; use one of {', '.join(PARTS)}.")
    if np.iscomplexobj(array):
        if part is None:
            raise InputError(f"{name}: holds complex values; say which real part to separate: pass --part phase "
                             f"or --part magnitude (part='phase' or 'magnitude'; 'real' and 'imag' also work).")
        if part == "phase":
            return np.angle(array)
        if part == "magnitude":
            return np.abs(array)
        if part == "real":
            return array.real
        return array.imag
    if array.dtype.kind not in "biuf":
        raise InputError(f"{name}: holds non-numeric data (dtype {array.dtype}). Give a numeric image or stack.")
    if part in ("phase", "magnitude", "imag"):
        raise InputError(f"{name}: the input is already real (dtype {array.dtype}); --part {part} applies only to "
                         f"complex input. Drop --part (or give the complex object instead).")
    return array


def read_images(sources: Sequence[str], part: str | None = None, min_size: int = 32,
                tiff_axes: str = "auto") -> tuple[np.ndarray, dict]:
    """Read N >= 2 real 2-D images of equal shape for the separation engine.

    Parameters
    ----------
    sources : sequence of str
        One source holding a stack ``(N, H, W)``, or several sources each holding a 2-D image or a stack
        (concatenated along N in the order given). A source is ``FILE.h5:/dataset`` (the dataset may be omitted when
        the file holds exactly one), ``FILE.npy`` or ``FILE.tif``/``FILE.tiff`` (multi-page), or a peer's
        reconstruction named without a dataset path (:mod:`ptycho_ddip.io.peers`: its scanned box, the phase unless
        ``part`` is "magnitude").
    part : {"phase", "magnitude", "real", "imag"}, optional
        Required for complex input (e.g. the complex object of a reconstruction); ``phase`` is ``numpy.angle``.
        ``"phase"``, ``"magnitude"`` and ``"imag"`` are refused for real input; ``"real"`` leaves it unchanged.
    min_size : int
        Smallest accepted height and width, in pixels.
    tiff_axes : {"auto", "zyx", "yxz"}
        Axis order of 3-D TIFFs. Adorym's ``obj_phase_ds_1.tiff`` stores ``(y, x, z)``; ``"auto"`` reads a 3-D TIFF
        whose last axis is <= 8 while both first axes are > 8 as ``(y, x, z)``.

    Returns
    -------
    images : numpy.ndarray
        float64, shape ``(N, H, W)``.
    meta : dict
        ``{"sources": [display names], "dtype": str (numpy.result_type of the original dtypes), "part": part,
        "slices_per_source": [int, ...]}``.

    Raises
    ------
    InputError
        Missing file or dataset, wrong number of dimensions, differing shapes, fewer than 2 slices, NaN/Inf, a constant
        slice, an image smaller than ``min_size``, or complex input without ``part``.

    Examples
    --------
    >>> images, meta = read_images(["rec.h5:/object"], part="phase")  # doctest: +SKIP
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [os.fspath(sources)]
    sources = [os.fspath(s) for s in sources]
    if not sources:
        raise InputError("no input given. Give one file holding a stack (N, H, W) or several image files.")
    arrays: list[np.ndarray] = []
    names: list[str] = []
    dtypes: list[np.dtype] = []
    from .peers import peer_images  # peers' reconstructions (PtyRAD, fold_slice, ptychodus, PtyPy, Adorym)

    for spec in sources:
        peer = peer_images(spec, part)  # their scanned box, real (phase unless part says), or None
        array, name = peer if peer is not None else _load_source(spec, tiff_axes)
        if array.ndim not in (2, 3):
            raise InputError(f"{name}: has shape {array.shape} ({array.ndim}-D); expected a 2-D image (H, W) or a "
                             f"3-D stack (N, H, W). Select a 2-D or 3-D dataset, or save the array with that shape.")
        dtypes.append(array.dtype)
        array = array if peer is not None else _select_part(array, name, part)
        arrays.append(np.asarray(array, dtype=np.float64).reshape((-1,) + array.shape[-2:]))
        names.append(name)
    for array, name in zip(arrays[1:], names[1:]):
        if array.shape[1:] != arrays[0].shape[1:]:
            raise InputError(f"{name}: image shape {array.shape[1:]} differs from {names[0]}: {arrays[0].shape[1:]}. "
                             f"All images must have the same height and width; crop or resample them first.")
    origin = [(name, k) for name, array in zip(names, arrays) for k in range(array.shape[0])]
    images = np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
    if images.shape[0] < 2:
        raise InputError(f"{', '.join(names)}: gives {images.shape[0]} image in total; separation needs at least 2. "
                         f"Give a stack (N, H, W) with N >= 2, or several image files.")
    height, width = images.shape[1:]
    if height < min_size or width < min_size:
        raise InputError(f"{', '.join(names)}: images are {height} x {width} pixels; the minimum is {min_size} in "
                         f"each dimension. Give larger images.")
    for index in range(images.shape[0]):
        name, local = origin[index]
        bad = int(np.count_nonzero(~np.isfinite(images[index])))
        if bad:
            raise InputError(f"{name}: slice {local} (input {index}, 0-based) has {bad} NaN or Inf pixel(s). "
                             f"Replace them (e.g. numpy.nan_to_num or crop them away) before separating.")
        low, high = images[index].min(), images[index].max()
        if low == high:
            raise InputError(f"{name}: slice {local} (input {index}, 0-based) is constant (all pixels = {low:g}); "
                             f"there is nothing to separate. Check the dataset and --part.")
    meta = {"sources": names, "dtype": str(np.result_type(*dtypes)), "part": part,
            "slices_per_source": [int(a.shape[0]) for a in arrays]}
    return images, meta
