"""Result files: separation results and reconstruction results (HDF5 + TIFFs), and initial guesses read back from
them. Every write is atomic."""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from ..atomic import InputError, atomic_group, atomic_write, check_output_path
from ._common import (HDF5_SUFFIXES, LOSS_COLUMNS, NPY_SUFFIXES, _RECONSTRUCTION_RESERVED, _SEPARATION_RESERVED,
                      _check_name, _name)
from .sources import _list_datasets, _open_h5, _read_h5_dataset, _read_npy, _require_file, _suffix, parse_source
from .tiff import _write_tiff_file


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
        dataset, a ``.npy`` file, or a peer's reconstruction (:mod:`ptycho_ddip.io.peers`). A 2-D complex array is
        read as one slice.
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
    from .peers import object_guess  # a peer's reconstruction (PtyRAD, fold_slice, ptychodus, PtyPy, Adorym)

    peer = object_guess(file) if dataset is None else None
    if peer is not None:
        array, name = peer
    elif suffix in HDF5_SUFFIXES:
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
