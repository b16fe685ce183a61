"""File input and output for ptycho_ddip: HDF5, TIFF, NPY, JSON and TOML.

This module knows nothing about the physics. It reads and validates user files with error messages that name the
offending file and say how to fix it (:class:`InputError`), and it writes every output atomically: the data go to a
temporary file in the target directory, which is renamed onto the target only once it is complete, so a crash never
leaves a partial file behind and an existing file is never replaced without ``overwrite=True``.

File layouts (see ``DESIGN.md`` section 4):

* diffraction dataset (Adorym-compatible): ``exchange/data`` and ``metadata/*``, see :func:`write_dataset`;
* reconstruction result: ``object``, ``probe``, ``positions``, ``loss`` plus phase/magnitude TIFFs, see
  :func:`write_reconstruction`;
* separation result: ``inputs``, ``separated``, ``alpha``, ``filters/*``, ``loss``, see
  :func:`write_separation_result`.

Units: lengths are metres in memory and centimetres in diffraction files (Adorym's convention); the exact SI value is
kept in an attribute ``value_m`` so that a write/read round trip is bit-exact.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import h5py
import numpy as np
import tifffile

from .atomic import InputError, atomic_group, atomic_write, check_output_path

__all__ = [
    "InputError",
    "parse_source",
    "read_images",
    "check_output_path",
    "atomic_write",
    "write_tiff",
    "read_tiff",
    "write_separation_result",
    "read_separation_result",
    "DiffractionDataset",
    "write_dataset",
    "read_dataset",
    "write_reconstruction",
    "read_reconstruction",
    "read_object_guess",
    "save_config_json",
    "load_config",
    "LOSS_COLUMNS",
    "HDF5_SUFFIXES",
    "TIFF_SUFFIXES",
]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".cxi")
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
LOSS_COLUMNS = ("epoch", "total", "mismatch", "exclusion", "weight")
PARTS = ("phase", "magnitude", "real", "imag")

_SEPARATION_RESERVED = ("inputs", "separated", "alpha", "filters", "loss", "mean", "std", "monitor")
_RECONSTRUCTION_RESERVED = ("object", "probe", "positions", "loss")


def _name(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


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
        the file holds exactly one), ``FILE.npy`` or ``FILE.tif``/``FILE.tiff`` (multi-page).
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
    for spec in sources:
        array, name = _load_source(spec, tiff_axes)
        if array.ndim not in (2, 3):
            raise InputError(f"{name}: has shape {array.shape} ({array.ndim}-D); expected a 2-D image (H, W) or a "
                             f"3-D stack (N, H, W). Select a 2-D or 3-D dataset, or save the array with that shape.")
        dtypes.append(array.dtype)
        array = _select_part(array, name, part)
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


# ----------------------------------------------------------------------------------------------------------------------
# Shared HDF5 helpers
# ----------------------------------------------------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (pathlib.PurePath, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(config: Mapping[str, Any] | None, file: str) -> str:
    try:
        return json.dumps(dict(config or {}), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{file}: the config cannot be stored as JSON ({exc}). Keep config values to numbers, "
                         f"strings, lists and dicts.") from exc


def _from_json(text: Any, file: str) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: attribute 'config' is not valid JSON ({exc}).") from exc


def _attr_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _write_common_attrs(h5: h5py.File, result: Mapping[str, Any], file: str) -> None:
    h5.attrs["config"] = _to_json(result.get("config"), file)
    h5.attrs["version"] = str(result.get("version", ""))
    if result.get("seed") is not None:
        h5.attrs["seed"] = int(result["seed"])


def _read_common_attrs(h5: h5py.File, file: str) -> dict:
    out = {"config": _from_json(h5.attrs.get("config", "{}"), file),
           "version": _attr_str(h5.attrs.get("version", ""))}
    seed = h5.attrs.get("seed")
    out["seed"] = None if seed is None else int(seed)
    return out


def _check_name(name: str, reserved: Sequence[str], file: str, what: str) -> str:
    name = str(name)
    if not name or "/" in name or name in reserved or name.startswith("."):
        raise InputError(f"{file}: cannot store {what} named {name!r}; names must be non-empty, contain no '/' and "
                         f"not be one of {', '.join(reserved)}. Rename it.")
    return name


def _write_extra(h5: h5py.File, extra: Mapping[str, Any] | None, reserved: Sequence[str], file: str) -> None:
    for name, value in (extra or {}).items():
        h5.create_dataset(_check_name(name, reserved, file, "an extra array"), data=np.asarray(value))


def _read_extra(h5: h5py.File, reserved: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: obj[()] for name, obj in h5.items() if isinstance(obj, h5py.Dataset) and name not in reserved}


def _columns(value: Any, n: int, default: Sequence[str], file: str, what: str) -> list[str]:
    columns = list(default if value is None else value)
    if len(columns) != n:
        raise InputError(f"{file}: '{what}' has {n} columns but {len(columns)} column names were given "
                         f"({columns}). Give one name per column.")
    return [str(c) for c in columns]


def _require_result(result: Mapping[str, Any], keys: Sequence[str], file: str) -> None:
    missing = [k for k in keys if result.get(k) is None]
    if missing:
        raise InputError(f"{file}: result is missing {', '.join(missing)}. Give every required array.")


def _read_h5_result(path: str | os.PathLike[str], required: Sequence[str], what: str) -> tuple[h5py.File, str]:
    file = _name(path)
    h5 = _open_h5(file, what)
    missing = [k for k in required if not isinstance(h5.get(k), h5py.Dataset)]
    if missing:
        present = ", ".join(_list_datasets(h5)) or "(none)"
        h5.close()
        raise InputError(f"{file}: not a {what} file: dataset(s) {', '.join(missing)} missing; datasets present: "
                         f"{present}. Give a file written by ptycho-ddip.")
    return h5, file


# ----------------------------------------------------------------------------------------------------------------------
# Separation results
# ----------------------------------------------------------------------------------------------------------------------

def write_separation_result(path: str | os.PathLike[str], result: Mapping[str, Any],
                            overwrite: bool = False) -> pathlib.Path:
    """Write a separation result as HDF5, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.h5`` file.
    result : dict
        Required: ``inputs`` (N, H, W), ``separated`` (N, H, W), ``alpha`` (N,), ``loss`` (n_epochs, 5; columns
        ``LOSS_COLUMNS`` = epoch, total, mismatch, exclusion, weight, or the names in ``loss_columns``).
        Optional: ``filters`` (dict name -> array, e.g. ``"f_1_2"`` -> 7x7 kernel or flattened parameters; stored in
        group ``filters``), ``mean``, ``std`` (ensembles), ``monitor`` (2-D table) with ``monitor_columns`` (list of
        str), ``extra`` (dict name -> array, stored as root datasets), ``config`` (dict, stored as JSON attribute),
        ``version`` (str), ``seed`` (int).
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    file = _name(path)
    _require_result(result, ("inputs", "separated", "alpha", "loss"), file)
    inputs, separated = np.asarray(result["inputs"]), np.asarray(result["separated"])
    if inputs.ndim != 3 or separated.shape != inputs.shape:
        raise InputError(f"{file}: 'inputs' {inputs.shape} and 'separated' {separated.shape} must both be "
                         f"(N, H, W) of the same shape.")
    loss = np.asarray(result["loss"])
    if loss.ndim != 2:
        raise InputError(f"{file}: 'loss' must be a 2-D table (n_epochs, n_columns), got shape {loss.shape}.")
    loss_columns = _columns(result.get("loss_columns"), loss.shape[1], LOSS_COLUMNS, file, "loss")
    monitor = result.get("monitor")
    if monitor is not None:
        monitor = np.asarray(monitor)
        if monitor.ndim != 2:
            raise InputError(f"{file}: 'monitor' must be a 2-D table, got shape {monitor.shape}.")
        monitor_columns = _columns(result.get("monitor_columns"), monitor.shape[1],
                                   [f"c{i}" for i in range(monitor.shape[1])], file, "monitor")
    with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("inputs", data=inputs)
        h5.create_dataset("separated", data=separated)
        h5.create_dataset("alpha", data=np.asarray(result["alpha"]))
        group = h5.create_group("filters")
        for name, value in (result.get("filters") or {}).items():
            group.create_dataset(_check_name(name, (), file, "a filter"), data=np.asarray(value))
        h5.create_dataset("loss", data=loss).attrs["columns"] = loss_columns
        for key in ("mean", "std"):
            if result.get(key) is not None:
                h5.create_dataset(key, data=np.asarray(result[key]))
        if monitor is not None:
            h5.create_dataset("monitor", data=monitor).attrs["columns"] = monitor_columns
        _write_extra(h5, result.get("extra"), _SEPARATION_RESERVED, file)
        _write_common_attrs(h5, result, file)
    return pathlib.Path(path)


def read_separation_result(path: str | os.PathLike[str]) -> dict:
    """Read a file written by :func:`write_separation_result`.

    Returns
    -------
    dict
        ``inputs``, ``separated``, ``alpha``, ``filters`` (dict), ``loss``, ``loss_columns``, ``extra`` (dict),
        ``config`` (dict), ``version`` (str), ``seed`` (int or None); plus ``mean``, ``std``, ``monitor`` and
        ``monitor_columns`` when stored.
    """
    h5, file = _read_h5_result(path, ("inputs", "separated", "alpha", "loss"), "separation result")
    with h5:
        out: dict[str, Any] = {key: h5[key][()] for key in ("inputs", "separated", "alpha", "loss")}
        out["loss_columns"] = [_attr_str(c) for c in h5["loss"].attrs.get("columns", LOSS_COLUMNS)]
        group = h5.get("filters")
        out["filters"] = {} if group is None else {name: obj[()] for name, obj in group.items()}
        for key in ("mean", "std", "monitor"):
            if key in h5:
                out[key] = h5[key][()]
        if "monitor" in h5:
            out["monitor_columns"] = [_attr_str(c) for c in h5["monitor"].attrs.get("columns", [])]
        out["extra"] = _read_extra(h5, _SEPARATION_RESERVED)
        out.update(_read_common_attrs(h5, file))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Diffraction datasets
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class DiffractionDataset:
    """A ptychographic diffraction dataset in SI units (Adorym-compatible on disk, see :func:`write_dataset`).

    Attributes
    ----------
    intensities : numpy.ndarray
        float32, (n_pos, det_y, det_x), measured intensities with DC at the centre, >= 0.
    energy_ev : float
        Photon energy, eV.
    pixel_size_m : float
        Object-plane pixel size, m.
    positions_px : numpy.ndarray
        float64, (n_pos, 2): (y, x) of the probe window's top-left corner in the object array, pixels.
    slice_pos_m : numpy.ndarray
        float64, (n_slices,): slice positions along the beam, m. Empty when the file does not store them (Adorym
        files): the reconstruction options must then give them.
    free_prop_m : float
        Propagation distance from the last slice to the detector, m; ``inf`` for the far field.
    probe : numpy.ndarray or None
        complex, (det_y, det_x).
    object_shape : tuple of int or None
        (H, W) of the object array, pixels.
    ground_truth_object : numpy.ndarray or None
        complex, (n_slices, H, W) (simulations only).
    xrf : dict of str to numpy.ndarray
        Element -> measured XRF map (H, W) on the object grid.
    ground_truth_xrf : dict of str to numpy.ndarray
        Element -> true XRF map (H, W) (simulations only).
    source : str
        The file the dataset was read from ("" when built in memory).

    Notes
    -----
    Arrays are converted to the documented dtypes and validated on construction; problems raise :class:`InputError`
    whose message starts with ``source`` (or "DiffractionDataset").
    """

    intensities: np.ndarray
    energy_ev: float
    pixel_size_m: float
    positions_px: np.ndarray
    slice_pos_m: np.ndarray
    free_prop_m: float = math.inf
    probe: np.ndarray | None = None
    object_shape: tuple[int, int] | None = None
    ground_truth_object: np.ndarray | None = None
    xrf: dict[str, np.ndarray] = field(default_factory=dict)
    ground_truth_xrf: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.intensities = np.asarray(self.intensities, dtype=np.float32)
        self.energy_ev = float(self.energy_ev)
        self.pixel_size_m = float(self.pixel_size_m)
        self.positions_px = np.asarray(self.positions_px, dtype=np.float64)
        self.slice_pos_m = np.atleast_1d(np.asarray(self.slice_pos_m, dtype=np.float64))
        self.free_prop_m = float(self.free_prop_m)
        if self.probe is not None:
            self.probe = _as_complex(self.probe)
        if self.object_shape is not None:
            self.object_shape = tuple(int(v) for v in np.asarray(self.object_shape).ravel())
        if self.ground_truth_object is not None:
            self.ground_truth_object = _as_complex(self.ground_truth_object)
        self.xrf = {str(k): np.asarray(v) for k, v in (self.xrf or {}).items()}
        self.ground_truth_xrf = {str(k): np.asarray(v) for k, v in (self.ground_truth_xrf or {}).items()}
        self.source = str(self.source)
        self.validate()

    @property
    def n_positions(self) -> int:
        """Number of scan positions."""
        return int(self.intensities.shape[0])

    @property
    def detector_shape(self) -> tuple[int, int]:
        """(det_y, det_x) in pixels."""
        return (int(self.intensities.shape[1]), int(self.intensities.shape[2]))

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the content: every array and number of the dataset, not its ``source`` path.

        Two files with the same data give the same fingerprint; a dataset regenerated in place does not.
        """
        h = hashlib.sha256()

        def add(name: str, value: Any) -> None:
            h.update(name.encode())
            if value is None:
                h.update(b"none")
            elif isinstance(value, np.ndarray):
                a = np.ascontiguousarray(value)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(memoryview(a).cast("B"))
            else:
                h.update(repr(value).encode())

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "source":
                continue
            if isinstance(value, dict):
                for key in sorted(value):
                    add(f"{f.name}/{key}", value[key])
            else:
                add(f.name, value)
        return h.hexdigest()

    def validate(self) -> None:
        """Check shapes and values; raise :class:`InputError` naming ``source`` and the fix."""
        name = self.source or "DiffractionDataset"
        data = self.intensities
        if data.ndim != 3:
            raise InputError(f"{name}: exchange/data has shape {data.shape}; expected (n_pos, det_y, det_x) or "
                             f"Adorym's (1, n_pos, det_y, det_x).")
        if data.shape[0] < 1:
            raise InputError(f"{name}: exchange/data holds no diffraction patterns.")
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(f"{name}: exchange/data has {bad} NaN or Inf value(s). Replace them (e.g. by 0 and mask "
                             f"the pixels) before reconstructing.")
        negative = int(np.count_nonzero(data < 0))
        if negative:
            raise InputError(f"{name}: exchange/data has {negative} negative value(s) (min {float(data.min()):g}); "
                             f"intensities must be >= 0. Clip the background-subtracted data at 0.")
        for key, value in (("metadata/energy_ev", self.energy_ev), ("metadata/psize_cm", self.pixel_size_m)):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name}: {key} must be a positive finite number, got {value!r}.")
        if not (self.free_prop_m > 0):
            raise InputError(f"{name}: metadata/free_prop_cm must be positive or 'inf' (far field), got "
                             f"{self.free_prop_m!r} m.")
        pos = self.positions_px
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise InputError(f"{name}: metadata/probe_pos_px has shape {pos.shape}; expected (n_pos, 2) with "
                             f"(y, x) per row.")
        if pos.shape[0] != data.shape[0]:
            raise InputError(f"{name}: metadata/probe_pos_px has {pos.shape[0]} positions but exchange/data has "
                             f"{data.shape[0]} patterns. Give one (y, x) position per pattern.")
        if not np.all(np.isfinite(pos)):
            raise InputError(f"{name}: metadata/probe_pos_px has NaN or Inf values.")
        if self.slice_pos_m.ndim != 1 or not np.all(np.isfinite(self.slice_pos_m)):
            raise InputError(f"{name}: metadata/slice_pos_cm must be a 1-D array of finite numbers, got "
                             f"{self.slice_pos_m!r}.")
        if self.probe is not None and self.probe.shape != data.shape[1:]:
            raise InputError(f"{name}: metadata/probe has shape {self.probe.shape} but the detector is "
                             f"{data.shape[1:]}. The probe must have the detector's shape.")
        if self.object_shape is not None and len(self.object_shape) != 2:
            raise InputError(f"{name}: metadata/obj_shape_px must hold (H, W), got {self.object_shape}.")
        gt = self.ground_truth_object
        if gt is not None:
            if gt.ndim != 3:
                raise InputError(f"{name}: ground_truth/object has shape {gt.shape}; expected (n_slices, H, W).")
            if self.slice_pos_m.size and gt.shape[0] != self.slice_pos_m.size:
                raise InputError(f"{name}: ground_truth/object has {gt.shape[0]} slices but metadata/slice_pos_cm "
                                 f"has {self.slice_pos_m.size}.")
            if self.object_shape is not None and gt.shape[1:] != self.object_shape:
                raise InputError(f"{name}: ground_truth/object is {gt.shape[1:]} but metadata/obj_shape_px is "
                                 f"{self.object_shape}.")
        for group, maps in (("xrf", self.xrf), ("ground_truth/xrf", self.ground_truth_xrf)):
            for element, xrf_map in maps.items():
                _check_name(element, (), name, f"an element in {group}")
                if xrf_map.ndim != 2:
                    raise InputError(f"{name}: {group}/{element} has shape {xrf_map.shape}; expected a 2-D map.")
                if self.object_shape is not None and xrf_map.shape != self.object_shape:
                    raise InputError(f"{name}: {group}/{element} is {xrf_map.shape} but the object grid "
                                     f"(metadata/obj_shape_px) is {self.object_shape}.")


def _as_complex(array: Any) -> np.ndarray:
    array = np.asarray(array)
    return array if np.iscomplexobj(array) else array.astype(np.complex64)


def _write_length(group: h5py.Group, key: str, value_m: Any) -> None:
    """Store a length in cm (Adorym) with the exact metre value in attribute ``value_m``."""
    value_m = np.asarray(value_m, dtype=np.float64)
    dset = group.create_dataset(key, data=value_m * 100.0)
    dset.attrs["units"] = "cm"
    dset.attrs["value_m"] = value_m


def _read_length(dset: h5py.Dataset, file: str) -> np.ndarray:
    try:
        cm = np.asarray(dset[()], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{file}: {dset.name} must hold numbers in cm, got {dset[()]!r}.") from exc
    exact = dset.attrs.get("value_m")
    if exact is not None:
        exact = np.asarray(exact, dtype=np.float64)
        if exact.shape == cm.shape and np.allclose(exact * 100.0, cm, rtol=1e-12, atol=0.0):
            return exact
    return cm / 100.0


def write_dataset(path: str | os.PathLike[str], ds: DiffractionDataset, overwrite: bool = False) -> pathlib.Path:
    """Write a diffraction dataset as Adorym-compatible HDF5, atomically.

    Layout: ``exchange/data`` (n_pos, det_y, det_x) float32 with attribute ``kind="intensity"``;
    ``metadata/energy_ev``, ``metadata/psize_cm``, ``metadata/probe_pos_px`` (n_pos, 2) (y, x),
    ``metadata/slice_pos_cm`` (n_slices,), ``metadata/free_prop_cm`` (the string ``"inf"`` when infinite); optional
    ``metadata/probe``, ``metadata/obj_shape_px``, ``xrf/<element>``, ``ground_truth/object``,
    ``ground_truth/xrf/<element>``. Lengths in cm carry the exact metre value in attribute ``value_m``.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.h5`` file.
    ds : DiffractionDataset
        The dataset; validated before anything is written.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    check_output_path(path, overwrite)
    ds.validate()
    with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as h5:
        data = h5.create_dataset("exchange/data", data=np.asarray(ds.intensities, dtype=np.float32))
        data.attrs["kind"] = "intensity"
        meta = h5.create_group("metadata")
        meta.create_dataset("energy_ev", data=np.float64(ds.energy_ev))
        _write_length(meta, "psize_cm", ds.pixel_size_m)
        meta.create_dataset("probe_pos_px", data=np.asarray(ds.positions_px, dtype=np.float64))
        _write_length(meta, "slice_pos_cm", ds.slice_pos_m)
        if math.isinf(ds.free_prop_m):
            meta.create_dataset("free_prop_cm", data="inf")
        else:
            _write_length(meta, "free_prop_cm", ds.free_prop_m)
        if ds.probe is not None:
            meta.create_dataset("probe", data=ds.probe)
        if ds.object_shape is not None:
            meta.create_dataset("obj_shape_px", data=np.asarray(ds.object_shape, dtype=np.int64))
        for element, xrf_map in ds.xrf.items():
            h5.create_dataset(f"xrf/{element}", data=xrf_map)
        if ds.ground_truth_object is not None:
            h5.create_dataset("ground_truth/object", data=ds.ground_truth_object)
        for element, xrf_map in ds.ground_truth_xrf.items():
            h5.create_dataset(f"ground_truth/xrf/{element}", data=xrf_map)
    return pathlib.Path(path)


def _data_kind(h5: h5py.File, data: h5py.Dataset, file: str) -> str:
    candidates = [data.attrs.get("kind"), data.attrs.get("raw_data_type"), data.attrs.get("data_type")]
    for key in ("metadata/kind", "metadata/raw_data_type", "metadata/data_type"):
        if isinstance(h5.get(key), h5py.Dataset):
            candidates.append(h5[key][()])
    candidates += [h5.attrs.get("kind"), h5.attrs.get("raw_data_type")]
    for value in candidates:
        if value is None:
            continue
        kind = _attr_str(np.asarray(value).ravel()[0] if np.ndim(value) else value).strip().lower()
        if kind in ("intensity", "magnitude"):
            return kind
        raise InputError(f"{file}: exchange/data kind is {kind!r}; it must be 'intensity' or 'magnitude'. Fix the "
                         f"attribute exchange/data.attrs['kind'].")
    return "intensity"


def _scalar(h5: h5py.File, key: str, file: str) -> float:
    value = np.asarray(h5[key][()])
    if value.size != 1 or value.dtype.kind not in "biuf":
        raise InputError(f"{file}: {key} must be a single number, got {value!r}.")
    return float(value.ravel()[0])


def read_dataset(path: str | os.PathLike[str]) -> DiffractionDataset:
    """Read a diffraction dataset written by :func:`write_dataset` or by Adorym.

    Accepts Adorym's 4-D ``exchange/data`` (1, n_pos, h, w). Data marked as magnitude (attribute ``kind``, or
    ``raw_data_type``/``data_type`` on the dataset, in ``metadata`` or on the file) are squared to intensities; data
    with no such mark are taken as intensities. A missing ``metadata/slice_pos_cm`` gives an empty ``slice_pos_m``
    and a missing ``metadata/free_prop_cm`` gives ``inf``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.

    Returns
    -------
    DiffractionDataset
        With ``source`` set to ``path``.

    Raises
    ------
    InputError
        Missing file, ``exchange/data`` or required metadata (energy, pixel size, positions), NaN/Inf or negative
        data, positions not (n_pos, 2) or not one per pattern, probe shape differing from the detector's.
    """
    file = _name(path)
    with _open_h5(file, "diffraction dataset") as h5:
        data = h5.get("exchange/data")
        if not isinstance(data, h5py.Dataset):
            present = ", ".join(_list_datasets(h5)) or "(none)"
            raise InputError(f"{file}: dataset 'exchange/data' not found; datasets present: {present}. Store the "
                             f"diffraction patterns in exchange/data as (n_pos, det_y, det_x).")
        required = {"metadata/energy_ev": "the photon energy in eV", "metadata/psize_cm": "the pixel size in cm",
                    "metadata/probe_pos_px": "the (y, x) probe positions in pixels, shape (n_pos, 2)"}
        for key, meaning in required.items():
            if not isinstance(h5.get(key), h5py.Dataset):
                raise InputError(f"{file}: required metadata '{key}' is missing. Add it ({meaning}).")
        kind = _data_kind(h5, data, file)
        array = np.asarray(data[()])
        if array.ndim == 4 and array.shape[0] == 1:
            array = array[0]
        elif array.ndim == 4:
            raise InputError(f"{file}: exchange/data has shape {array.shape}; only one rotation angle (first axis "
                             f"of length 1) is supported. Select one angle.")
        if array.dtype.kind not in "biuf":
            raise InputError(f"{file}: exchange/data has dtype {array.dtype}; expected real intensities or "
                             f"magnitudes.")
        if kind == "magnitude":
            array = np.asarray(array, dtype=np.float32)
            if array.ndim == 3 and np.all(np.isfinite(array)) and np.any(array < 0):
                raise InputError(f"{file}: exchange/data holds magnitudes with {int(np.count_nonzero(array < 0))} "
                                 f"negative value(s); magnitudes must be >= 0.")
            array = np.square(array)
        meta = h5["metadata"]
        slice_pos = _read_length(meta["slice_pos_cm"], file) if isinstance(meta.get("slice_pos_cm"), h5py.Dataset) \
            else np.zeros(0)
        free = meta.get("free_prop_cm")
        free_prop = math.inf
        if isinstance(free, h5py.Dataset):
            raw = free[()]
            if isinstance(raw, (bytes, str)):
                text = _attr_str(raw).strip().lower()
                if text not in ("inf", "infinity", "none", ""):
                    raise InputError(f"{file}: metadata/free_prop_cm is {text!r}; give a number in cm or 'inf'.")
            else:
                free_prop = float(_read_length(free, file))
        probe = meta["probe"][()] if isinstance(meta.get("probe"), h5py.Dataset) else None
        shape = meta["obj_shape_px"][()] if isinstance(meta.get("obj_shape_px"), h5py.Dataset) else None
        xrf = {k: v[()] for k, v in h5["xrf"].items()} if "xrf" in h5 else {}
        gt_obj = h5["ground_truth/object"][()] if isinstance(h5.get("ground_truth/object"), h5py.Dataset) else None
        gt_xrf = {k: v[()] for k, v in h5["ground_truth/xrf"].items()} if "ground_truth/xrf" in h5 else {}
        return DiffractionDataset(
            intensities=array, energy_ev=_scalar(h5, "metadata/energy_ev", file),
            pixel_size_m=float(_read_length(meta["psize_cm"], file).ravel()[0]),
            positions_px=meta["probe_pos_px"][()], slice_pos_m=slice_pos, free_prop_m=free_prop, probe=probe,
            object_shape=None if shape is None else tuple(int(v) for v in np.ravel(shape)),
            ground_truth_object=gt_obj, xrf=xrf, ground_truth_xrf=gt_xrf, source=file)


# ----------------------------------------------------------------------------------------------------------------------
# Reconstruction results
# ----------------------------------------------------------------------------------------------------------------------

def _tiff_paths(path: str | os.PathLike[str]) -> tuple[pathlib.Path, pathlib.Path]:
    out = pathlib.Path(path)
    return out.with_name(out.stem + "_phase.tiff"), out.with_name(out.stem + "_magnitude.tiff")


def write_reconstruction(path: str | os.PathLike[str], result: Mapping[str, Any],
                         overwrite: bool = False) -> pathlib.Path:
    """Write a reconstruction result: HDF5 plus ``<stem>_phase.tiff`` and ``<stem>_magnitude.tiff`` beside it.

    All three files are checked first (none is written if any exists without ``overwrite``), written to temporary
    files, then renamed together.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.h5`` file.
    result : dict
        ``object`` complex (n_slices, H, W), ``probe`` complex (h, w), ``positions`` (n_pos, 2), ``loss``
        (n_epochs,); optional ``extra`` (dict name -> array, root datasets), ``config`` (dict, JSON attribute),
        ``version`` (str), ``seed`` (int), ``n_ranks`` (int, default 1).
    overwrite : bool
        Whether existing files may be replaced.

    Returns
    -------
    pathlib.Path
        The HDF5 file.
    """
    file = _name(path)
    phase_path, magnitude_path = _tiff_paths(path)
    for p in (path, phase_path, magnitude_path):
        check_output_path(p, overwrite)
    _require_result(result, ("object", "probe", "positions", "loss"), file)
    obj = np.asarray(result["object"])
    if obj.ndim != 3 or not np.iscomplexobj(obj):
        raise InputError(f"{file}: 'object' must be complex (n_slices, H, W), got {obj.dtype} {obj.shape}.")
    with atomic_group([path, phase_path, magnitude_path], overwrite) as (tmp, tmp_phase, tmp_magnitude):
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("object", data=obj)
            h5.create_dataset("probe", data=np.asarray(result["probe"]))
            h5.create_dataset("positions", data=np.asarray(result["positions"]))
            h5.create_dataset("loss", data=np.asarray(result["loss"]))
            _write_extra(h5, result.get("extra"), _RECONSTRUCTION_RESERVED, file)
            _write_common_attrs(h5, result, file)
            h5.attrs["n_ranks"] = int(result.get("n_ranks", 1) or 1)
        _write_tiff_file(tmp_phase, np.angle(obj))
        _write_tiff_file(tmp_magnitude, np.abs(obj))
    return pathlib.Path(path)


def read_reconstruction(path: str | os.PathLike[str]) -> dict:
    """Read a file written by :func:`write_reconstruction`.

    Returns
    -------
    dict
        ``object``, ``probe``, ``positions``, ``loss``, ``extra`` (dict), ``config`` (dict), ``version`` (str),
        ``seed`` (int or None), ``n_ranks`` (int).
    """
    h5, file = _read_h5_result(path, _RECONSTRUCTION_RESERVED, "reconstruction result")
    with h5:
        out: dict[str, Any] = {key: h5[key][()] for key in _RECONSTRUCTION_RESERVED}
        out["extra"] = _read_extra(h5, _RECONSTRUCTION_RESERVED)
        out.update(_read_common_attrs(h5, file))
        out["n_ranks"] = int(h5.attrs.get("n_ranks", 1))
    return out


def read_object_guess(path: str, n_slices: int | None = None) -> np.ndarray:
    """Read an initial-guess object, complex (n_slices, H, W).

    Parameters
    ----------
    path : str
        A reconstruction HDF5 (dataset ``object`` is used), ``FILE.h5:/dataset``, an HDF5 file holding exactly one
        dataset, or a ``.npy`` file. A 2-D complex array is read as one slice.
    n_slices : int, optional
        Expected number of slices.

    Returns
    -------
    numpy.ndarray
        Complex array as stored (complex64 or complex128), shape (n_slices, H, W).

    Raises
    ------
    InputError
        Missing file or dataset, real or non-finite data, wrong dimensions, slice count differing from ``n_slices``.
    """
    file, dataset = parse_source(os.fspath(path))
    suffix = _suffix(file)
    if suffix in HDF5_SUFFIXES:
        array, dataset = _read_h5_dataset(file, dataset, preferred="object")
        name = f"{file}:{dataset}"
    elif suffix in NPY_SUFFIXES:
        array, name = _read_npy(file), file
    else:
        _require_file(file)
        raise InputError(f"{file}: unknown file type '{suffix}' for an object guess. Give a reconstruction .h5, "
                         f"FILE.h5:/dataset or a .npy file.")
    array = np.asarray(array)
    if not np.iscomplexobj(array):
        raise InputError(f"{name}: holds real values ({array.dtype}); an object guess must be the complex "
                         f"transmission (n_slices, H, W). Give the 'object' of a reconstruction.")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise InputError(f"{name}: has shape {array.shape}; an object guess must be (n_slices, H, W).")
    if n_slices is not None and array.shape[0] != n_slices:
        raise InputError(f"{name}: holds {array.shape[0]} slice(s) but the reconstruction uses {n_slices}. Give a "
                         f"guess with {n_slices} slices or change the number of slices.")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise InputError(f"{name}: has {bad} NaN or Inf value(s). Give a finite object guess.")
    return array


# ----------------------------------------------------------------------------------------------------------------------
# Configuration files
# ----------------------------------------------------------------------------------------------------------------------

def save_config_json(path: str | os.PathLike[str], config: Mapping[str, Any],
                     overwrite: bool = False) -> pathlib.Path:
    """Write ``config`` as indented JSON, atomically.

    Numpy scalars and arrays are stored as numbers and lists, paths as strings.
    """
    try:
        text = json.dumps(dict(config), indent=2, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"{_name(path)}: the config cannot be stored as JSON ({exc}). Keep config values to "
                         f"numbers, strings, lists and dicts.") from exc
    with atomic_write(path, overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return pathlib.Path(path)


def load_config(path: str | os.PathLike[str]) -> dict:
    """Read a configuration file (``.json``, or ``.toml`` on Python >= 3.11) into a dict.

    Raises
    ------
    InputError
        Missing file, unknown suffix, a syntax error (with its position), a top level that is not a table/object, or
        TOML on Python < 3.11.
    """
    file = _name(path)
    suffix = _suffix(file)
    if suffix not in (".json", ".toml"):
        raise InputError(f"{file}: unknown config type '{suffix}'. Give a .json or .toml file.")
    _require_file(file, "config")
    if suffix == ".json":
        try:
            with open(file, encoding="utf-8") as handle:
                config = json.load(handle)
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. Fix the "
                             f"file.") from exc
    else:
        if sys.version_info < (3, 11):  # pragma: no cover - depends on the interpreter
            raise InputError(f"{file}: TOML needs Python >= 3.11 (tomllib); use a .json config instead.")
        import tomllib

        try:
            with open(file, "rb") as handle:
                config = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{file}: invalid TOML: {exc}. Fix the file.") from exc
    if not isinstance(config, dict):
        raise InputError(f"{file}: the top level must be a JSON object / TOML table of options, got "
                         f"{type(config).__name__}.")
    return config
