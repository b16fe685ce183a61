"""The Adorym-compatible HDF5 layout of diffraction datasets (``exchange/data``, ``metadata/*``, ``ground_truth/*``):
:func:`write_dataset` and :func:`read_dataset`."""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any

import h5py
import numpy as np

from ..atomic import InputError, atomic_write, check_output_path
from ._common import _name
from .dataset import DiffractionDataset
from .results import _attr_str
from .sources import _list_datasets, _open_h5


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
    """Read a diffraction dataset written by :func:`write_dataset` or by Adorym, or a CXI file
    (:func:`ptycho_ddip.io.cxi.read_cxi`: suffix ``.cxi`` or CXI content).

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
    from .cxi import is_cxi, read_cxi  # CXI 1.6 / NXcxi_ptycho files are read by ptycho_ddip.io.cxi

    if is_cxi(file):
        return read_cxi(file)
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
