"""CXI 1.6 / NXcxi_ptycho diffraction files: :func:`read_cxi`, :func:`write_cxi`, :func:`is_cxi`, :func:`describe_cxi`.

Layout read (the CXI 1.6 names; NXcxi_ptycho, nexusformat/definitions contributed_definitions/NXcxi_ptycho.nxdl.xml,
and the readers of AdvancedPhotonSource/ptychodus src/ptychodus/plugins/cxi_file.py and ptycho/ptypy
ptypy/experiment/ALS_5321.py, which use the same paths):

* ``entry_1/data_1/data`` or ``entry_1/instrument_1/detector_1/data``: diffraction intensities (n, h, w) >= 0, or a
  raster (n_y, n_x, h, w) read as (n_y n_x, h, w);
* ``entry_1/instrument_1/beam_1/energy`` (NXcxi) or ``entry_1/instrument_1/source_1/energy``: photon energy in J
  (CXI is SI; a ``units`` attribute eV or keV is converted);
* ``entry_1/instrument_1/detector_1/distance``, ``x_pixel_size``, ``y_pixel_size``: sample-detector distance z and
  detector pixel size dp, m (a ``units`` attribute m, mm, um or nm is converted);
* ``entry_1/data_1/translation`` or ``entry_1/sample_1/geometry_1/translation`` (both must agree when both are
  there): scan positions (n, 3) or (n, 2), x, y (, z), m;
* optional ``entry_1/instrument_1/source_1/illumination`` (or ``probe``): the probe, complex (h, w) (first mode of
  (modes, h, w)); optional ``entry_1/instrument_1/detector_1/mask`` (h, w), non-zero = bad pixel.

Conversions to the project's conventions (``DESIGN.md`` section 2):

* object-plane pixel size: ``lambda z / (N dp)`` per axis (N = detector pixels along that axis, lambda from the
  energy); the two axes must agree to 1e-6 (else the file is refused: non-square object pixels);
* positions: a translation ``(x, y)`` is the probe centre in the object frame, +x along columns, +y along rows
  (ptychodus and PtyPy read it so). In pixels, ``c = translation / pixel_size``; the top-left corner of the probe
  window is ``c + (W, H) / 2 - (w, h) / 2`` when the file records the object shape (files written by
  :func:`write_cxi`, whose origin is the object's centre), otherwise ``c - min(c)`` (the scan's corner is put at
  pixel 0 and the object is the smallest array holding every window). Values within 1e-6 px of an integer are
  snapped to it, so a CXI round trip keeps integer positions integer. Files whose translations are sample-motor
  positions of the opposite sign must be negated first;
* CXI records no slice positions: give them with ``--slice-spacing-m`` or ``slice_pos_m`` (files written by
  :func:`write_cxi` keep them, with the object shape, ground truth and XRF maps, in the group ``entry_1/ptycho_ddip``,
  which other CXI readers ignore);
* the mask is checked against the detector shape; ptycho_ddip fits every pixel, so flagged pixels give a warning.

Every problem raises :class:`~ptycho_ddip.atomic.InputError` naming the file, the field and the fix.
"""
from __future__ import annotations

import math
import os
import pathlib
import warnings
from typing import Any

import h5py
import numpy as np

from ..atomic import InputError, atomic_write, check_output_path
from ._common import _name
from .dataset import DiffractionDataset
from .sources import _list_datasets, _open_h5, _require_file

#: Electron-volt in joules (SI, exact).
ELECTRON_VOLT_J = 1.602176634e-19
#: Default detector pixel size written by :func:`write_cxi` (a 75 um hybrid pixel detector), m.
DEFAULT_DETECTOR_PIXEL_M = 75e-6

DATA_PATHS = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data")
TRANSLATION_PATHS = ("entry_1/data_1/translation", "entry_1/sample_1/geometry_1/translation")
PROBE_PATHS = ("entry_1/instrument_1/source_1/illumination", "entry_1/instrument_1/source_1/probe")
ENERGY = "entry_1/instrument_1/source_1/energy"
BEAM_ENERGY = "entry_1/instrument_1/beam_1/energy"  # NXcxi_ptycho: the photon energy (source_1/energy is the ring's)
DISTANCE = "entry_1/instrument_1/detector_1/distance"
PIXEL_X = "entry_1/instrument_1/detector_1/x_pixel_size"
PIXEL_Y = "entry_1/instrument_1/detector_1/y_pixel_size"
MASK = "entry_1/instrument_1/detector_1/mask"
EXTRA = "entry_1/ptycho_ddip"


def _wavelength_m(energy_ev: float) -> float:
    from ..multislice.physics import wavelength_m

    return float(wavelength_m(energy_ev))


def is_cxi(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a CXI file: suffix ``.cxi``, or HDF5 with ``cxi_version`` or a CXI data path and no
    Adorym ``exchange/data``. Never raises for unreadable files (returns False)."""
    file = _name(path)
    if pathlib.Path(file).suffix.lower() == ".cxi":
        return True
    try:
        if not (os.path.isfile(file) and h5py.is_hdf5(file)):
            return False
        with h5py.File(file, "r") as h5:
            if "exchange/data" in h5:
                return False
            return "cxi_version" in h5 or any(isinstance(h5.get(p), h5py.Dataset) for p in DATA_PATHS)
    except OSError:
        return False


def _first(h5: h5py.File, paths: tuple, file: str, what: str, required: bool = True) -> tuple:
    """(dataset, path) of the first of ``paths`` present; InputError naming them when required and none is."""
    for path in paths:
        obj = h5.get(path)
        if isinstance(obj, h5py.Dataset):
            return obj, path
    if required:
        raise InputError(f"{file}: CXI field {' or '.join(paths)} is missing; add {what}.")
    return None, None


#: Units a field's ``units`` attribute may name, as factors to SI (CXI itself is SI; NeXus files say their unit).
UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "\u00b5m": 1e-6, "micron": 1e-6, "nm": 1e-9, "j": 1.0,
         "ev": ELECTRON_VOLT_J, "kev": 1e3 * ELECTRON_VOLT_J}


def _number(h5: h5py.File, path: str, file: str, what: str) -> float:
    """One positive number in SI units (a ``units`` attribute of :data:`UNITS` is converted)."""
    obj = h5.get(path)
    if not isinstance(obj, h5py.Dataset):
        raise InputError(f"{file}: CXI field {path} is missing; add {what}.")
    value = np.asarray(obj[()])
    if value.dtype.kind not in "biuf" or value.size < 1 or not np.all(value == value.ravel()[0]):
        raise InputError(f"{file}: CXI field {path} must be one number ({what}), got {value!r}.")
    number = float(value.ravel()[0])
    if not (math.isfinite(number) and number > 0):
        raise InputError(f"{file}: CXI field {path} must be a positive finite number ({what}), got {number!r}.")
    units = obj.attrs.get("units")
    if units is not None:
        text = (units.decode() if isinstance(units, bytes) else str(units)).strip().lower()
        if text not in UNITS:
            raise InputError(f"{file}: CXI field {path} has units {text!r}; use SI ({what}).")
        number *= UNITS[text]
    return number


def _read_frames(h5: h5py.File, file: str) -> tuple:
    data, path = _first(h5, DATA_PATHS, file, "the diffraction patterns (n, h, w)")
    if data.dtype.kind not in "biuf":
        raise InputError(f"{file}: CXI field {path} has dtype {data.dtype}; expected real intensities.")
    frames = np.asarray(data[()], dtype=np.float32)
    if frames.ndim == 4:  # NXcxi raster (n_y, n_x, h, w)
        frames = frames.reshape((-1,) + frames.shape[2:])
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise InputError(f"{file}: CXI field {path} has shape {data.shape}; expected (n, h, w) or (n_y, n_x, h, w).")
    bad = int(np.count_nonzero(~np.isfinite(frames)))
    if bad:
        raise InputError(f"{file}: CXI field {path} has {bad} NaN or Inf value(s); replace them (and mask the pixels).")
    negative = int(np.count_nonzero(frames < 0))
    if negative:
        raise InputError(f"{file}: CXI field {path} has {negative} negative value(s) (min {float(frames.min()):g}); "
                         f"intensities must be >= 0: clip the background-subtracted data at 0.")
    return frames, path


def _length_unit(dset: h5py.Dataset, file: str) -> float:
    units = dset.attrs.get("units")
    if units is None:
        return 1.0
    text = (units.decode() if isinstance(units, bytes) else str(units)).strip().lower()
    if text not in UNITS or text in ("j", "ev", "kev"):
        raise InputError(f"{file}: CXI field {dset.name} has units {text!r}; give the translations in metres.")
    return UNITS[text]


def _read_translations(h5: h5py.File, file: str, n: int) -> tuple:
    found = [(p, np.asarray(h5[p][()], dtype=np.float64) * _length_unit(h5[p], file))
             for p in TRANSLATION_PATHS if isinstance(h5.get(p), h5py.Dataset)]
    if not found:
        raise InputError(f"{file}: CXI field {' or '.join(TRANSLATION_PATHS)} is missing; add the scan positions "
                         f"(n, 3) as x, y, z in metres.")
    path, xyz = found[0]
    if xyz.ndim != 2 or xyz.shape[1] not in (2, 3):
        raise InputError(f"{file}: CXI field {path} has shape {xyz.shape}; expected (n, 3) (x, y, z in metres).")
    if xyz.shape[0] != n:
        raise InputError(f"{file}: CXI field {path} has {xyz.shape[0]} positions but the data hold {n} patterns; "
                         f"give one translation per pattern.")
    if not np.all(np.isfinite(xyz)):
        raise InputError(f"{file}: CXI field {path} has NaN or Inf values.")
    for other, values in found[1:]:
        if values.shape != xyz.shape or not np.allclose(values, xyz, rtol=1e-9, atol=1e-15):
            raise InputError(f"{file}: CXI fields {path} and {other} differ; they must hold the same scan positions "
                             f"(link one to the other).")
    return xyz[:, :2], path


def _pixel_size(h5: h5py.File, file: str, energy_ev: float, shape: tuple) -> float:
    distance = _number(h5, DISTANCE, file, "the sample-detector distance in metres")
    dx = _number(h5, PIXEL_X, file, "the detector pixel width in metres")
    dy = _number(h5, PIXEL_Y, file, "the detector pixel height in metres")
    lam = _wavelength_m(energy_ev)
    size_y, size_x = lam * distance / (shape[0] * dy), lam * distance / (shape[1] * dx)
    if abs(size_y - size_x) > 1e-6 * max(size_y, size_x):
        raise InputError(f"{file}: CXI fields {PIXEL_X}, {PIXEL_Y} and the detector shape {shape} give object pixels "
                         f"of {size_x:.4g} x {size_y:.4g} m (lambda z / (N dp)); ptycho_ddip needs square object "
                         f"pixels: crop the patterns so that N_x dp_x = N_y dp_y.")
    return size_x


def _read_probe(h5: h5py.File, file: str, shape: tuple) -> np.ndarray | None:
    obj, path = _first(h5, PROBE_PATHS, file, "the probe", required=False)
    if obj is None:
        return None
    probe = np.asarray(obj[()])
    if probe.ndim == 3:
        if probe.shape[0] > 1:
            warnings.warn(f"{file}: {path} holds {probe.shape[0]} probe modes; ptycho_ddip uses the first")
        probe = probe[0]
    if probe.shape != tuple(shape):
        raise InputError(f"{file}: CXI field {path} has shape {probe.shape} but the patterns are {tuple(shape)}; the "
                         f"probe must have the detector's shape.")
    if not np.all(np.isfinite(probe)):
        raise InputError(f"{file}: CXI field {path} has NaN or Inf values.")
    return probe if np.iscomplexobj(probe) else probe.astype(np.complex64)


def _check_mask(h5: h5py.File, file: str, shape: tuple) -> None:
    obj = h5.get(MASK)
    if not isinstance(obj, h5py.Dataset):
        return
    mask = np.asarray(obj[()])
    if mask.shape != tuple(shape):
        raise InputError(f"{file}: CXI field {MASK} has shape {mask.shape} but the patterns are {tuple(shape)}; give a "
                         f"mask of the detector's shape.")
    bad = int(np.count_nonzero(mask))
    if bad:
        warnings.warn(f"{file}: {MASK} flags {bad} pixel(s); ptycho_ddip fits every pixel, so check that they hold "
                      f"sensible counts (or crop them away)")


def _extra(h5: h5py.File, key: str) -> Any:
    obj = h5.get(f"{EXTRA}/{key}")
    return obj[()] if isinstance(obj, h5py.Dataset) else None


def _extra_maps(h5: h5py.File, key: str) -> dict:
    group = h5.get(f"{EXTRA}/{key}")
    if not isinstance(group, h5py.Group):
        return {}
    return {k: v[()] for k, v in group.items() if isinstance(v, h5py.Dataset)}


def read_cxi(path: str | os.PathLike[str]) -> DiffractionDataset:
    """Read a CXI 1.6 / NXcxi_ptycho ptychography file as a :class:`DiffractionDataset` (layout and conversions: the
    module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.cxi`` (HDF5) file.

    Returns
    -------
    DiffractionDataset
        Intensities (n, h, w) float32, energy (eV), object pixel size ``lambda z / (N dp)`` (m), positions (y, x) of
        the probe window's top-left corner (pixels), far field; ``slice_pos_m`` empty unless the file was written by
        :func:`write_cxi` with slice positions.

    Raises
    ------
    InputError
        A missing or inconsistent field, named with its CXI path: data, energy (must be in J), distance, pixel sizes,
        translations (one per pattern), probe or mask shape.
    """
    file = _name(path)
    with _open_h5(file, "CXI file") as h5:
        if not any(isinstance(h5.get(p), h5py.Dataset) for p in DATA_PATHS):
            present = ", ".join(_list_datasets(h5)[:20]) or "(none)"
            raise InputError(f"{file}: CXI field {' or '.join(DATA_PATHS)} is missing (datasets present: {present}); "
                             f"store the diffraction patterns there as (n, h, w).")
        frames, _ = _read_frames(h5, file)
        shape = frames.shape[1:]
        energy_path = BEAM_ENERGY if isinstance(h5.get(BEAM_ENERGY), h5py.Dataset) else ENERGY
        energy_j = _number(h5, energy_path, file, "the photon energy in J")
        if not 1e-19 < energy_j < 1e-12:
            raise InputError(f"{file}: CXI field {energy_path} is {energy_j:g} J, not a photon energy (CXI stores SI "
                             f"units: 10 keV = {1e4 * ELECTRON_VOLT_J:.4g} J); convert it to joules.")
        energy_ev = energy_j / ELECTRON_VOLT_J
        pixel = _pixel_size(h5, file, energy_ev, shape)
        xy, _ = _read_translations(h5, file, frames.shape[0])
        probe = _read_probe(h5, file, shape)
        _check_mask(h5, file, shape)
        centre = xy[:, ::-1] / pixel  # (y, x) probe centre, px
        object_shape = _extra(h5, "object_shape_px")
        if object_shape is not None:
            object_shape = tuple(int(v) for v in np.ravel(object_shape))
            if len(object_shape) != 2:
                raise InputError(f"{file}: {EXTRA}/object_shape_px must hold (H, W), got {object_shape}.")
            positions = centre + (np.asarray(object_shape) - np.asarray(shape)) / 2.0
        else:
            positions = centre - centre.min(axis=0)
        nearest = np.round(positions)
        positions = np.where(np.abs(positions - nearest) < 1e-6, nearest, positions)
        slice_pos = _extra(h5, "slice_pos_m")
        return DiffractionDataset(
            intensities=frames, energy_ev=energy_ev, pixel_size_m=pixel, positions_px=positions,
            slice_pos_m=np.zeros(0) if slice_pos is None else slice_pos, probe=probe, object_shape=object_shape,
            ground_truth_object=_extra(h5, "ground_truth/object"), xrf=_extra_maps(h5, "xrf"),
            ground_truth_xrf=_extra_maps(h5, "ground_truth/xrf"), source=file)


def _length(group: h5py.Group, key: str, value: float) -> None:
    group.create_dataset(key, data=np.float64(value)).attrs["units"] = "m"


def write_cxi(path: str | os.PathLike[str], ds: DiffractionDataset, overwrite: bool = False,
              detector_pixel_size_m: float = DEFAULT_DETECTOR_PIXEL_M, extras: bool = True) -> pathlib.Path:
    """Write a far-field diffraction dataset as CXI 1.6 / NXcxi_ptycho, atomically.

    The detector distance is chosen so that ``lambda z / (N dp)`` equals the dataset's pixel size for the given
    detector pixel width ``dp`` (the height is ``dp w / h``, so both axes give the same object pixel). Translations
    are the probe centres relative to the object's centre, ``(x, y, 0)`` in metres (module docstring). The data and
    translation are linked from ``entry_1/data_1`` and ``entry_1/instrument_1/detector_1``.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.cxi`` file.
    ds : DiffractionDataset
        A far-field dataset (``free_prop_m`` infinite).
    overwrite : bool
        Whether an existing file may be replaced.
    detector_pixel_size_m : float
        Detector pixel width dp, m.
    extras : bool
        Also keep what CXI has no field for (object shape, slice positions, ground truth, XRF maps) in
        ``entry_1/ptycho_ddip``; without them a reader takes the smallest object holding the scan and needs the
        slice positions from the user.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    file = _name(path)
    check_output_path(path, overwrite)
    ds.validate()
    if not math.isinf(ds.free_prop_m):
        raise InputError(f"{file}: CXI holds far-field data; this dataset has a finite propagation distance "
                         f"({ds.free_prop_m:g} m). Keep it in the Adorym layout (.h5).")
    if not (math.isfinite(detector_pixel_size_m) and detector_pixel_size_m > 0):
        raise InputError(f"{file}: the detector pixel size must be a positive number of metres, got "
                         f"{detector_pixel_size_m!r}.")
    h, w = ds.detector_shape
    lam = _wavelength_m(ds.energy_ev)
    distance = ds.pixel_size_m * w * detector_pixel_size_m / lam
    shape = ds.object_shape
    if shape is None:
        top = np.floor(ds.positions_px).max(axis=0)
        shape = (int(top[0]) + h, int(top[1]) + w)
    centre = ds.positions_px + (np.asarray([h, w]) - np.asarray(shape)) / 2.0  # (y, x), px from the object centre
    xyz = np.zeros((ds.n_positions, 3))
    xyz[:, 0], xyz[:, 1] = centre[:, 1] * ds.pixel_size_m, centre[:, 0] * ds.pixel_size_m
    with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("cxi_version", data=np.int64(160))
        entry = h5.create_group("entry_1")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("definition", data="NXcxi_ptycho")
        source = entry.create_group("instrument_1/source_1")
        source.create_dataset("energy", data=np.float64(ds.energy_ev * ELECTRON_VOLT_J)).attrs["units"] = "J"
        if ds.probe is not None:
            source.create_dataset("illumination", data=ds.probe)
        det = entry["instrument_1"].create_group("detector_1")
        data = det.create_dataset("data", data=np.asarray(ds.intensities, dtype=np.float32))
        data.attrs["units"] = "counts"
        _length(det, "distance", distance)
        _length(det, "x_pixel_size", detector_pixel_size_m)
        _length(det, "y_pixel_size", detector_pixel_size_m * w / h)
        geometry = entry.create_group("sample_1/geometry_1")
        geometry.create_dataset("translation", data=xyz).attrs["units"] = "m"
        det["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        data_1 = entry.create_group("data_1")
        data_1["data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        data_1["translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        if extras:
            extra = entry.create_group("ptycho_ddip")
            extra.attrs["NX_class"] = "NXcollection"
            extra.create_dataset("object_shape_px", data=np.asarray(shape, dtype=np.int64))
            if ds.slice_pos_m.size:
                extra.create_dataset("slice_pos_m", data=ds.slice_pos_m)
            if ds.ground_truth_object is not None:
                extra.create_dataset("ground_truth/object", data=ds.ground_truth_object)
            for element, xrf_map in ds.xrf.items():
                extra.create_dataset(f"xrf/{element}", data=xrf_map)
            for element, xrf_map in ds.ground_truth_xrf.items():
                extra.create_dataset(f"ground_truth/xrf/{element}", data=xrf_map)
    return pathlib.Path(path)


def cxi_slice_positions_missing(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a CXI file that records no slice positions (so a multislice run must be given them)."""
    file = _name(path)
    if not is_cxi(file):
        return False
    _require_file(file, "CXI file")
    try:
        with h5py.File(file, "r") as h5:
            return not isinstance(h5.get(f"{EXTRA}/slice_pos_m"), h5py.Dataset)
    except OSError:
        return False  # read_cxi reports it


def require_slice_positions(path: str | os.PathLike[str], slice_pos_m: Any, n_slices: Any) -> None:
    """InputError (one line) when ``path`` is a CXI file without slice positions and a multislice run was given
    none (``slice_pos_m`` None and ``n_slices`` not 1)."""
    if slice_pos_m is None and n_slices != 1 and cxi_slice_positions_missing(path):
        raise InputError(f"{_name(path)}: CXI files record no slice positions; give --slice-spacing-m D (slices at 0, "
                         f"D, 2D, ...; --n-slices N, default 2) or slice_pos_m (metres) in the config")


def describe_cxi(path: str | os.PathLike[str]) -> list:
    """Lines for ``ptycho-ddip info``: what :func:`read_cxi` makes of the file (or why it cannot)."""
    try:
        ds = read_cxi(path)
    except InputError as exc:
        return [f"CXI file, not readable by ptycho_ddip: {exc}"]
    span = ds.positions_px.max(axis=0) - ds.positions_px.min(axis=0)
    slices = (f"{ds.slice_pos_m.size} slice position(s) recorded" if ds.slice_pos_m.size
              else "no slice positions (give --slice-spacing-m)")
    return [f"CXI ptychography data: {ds.n_positions} patterns of {ds.detector_shape[0]}x{ds.detector_shape[1]}, "
            f"{ds.energy_ev:.6g} eV, object pixel {ds.pixel_size_m:.4g} m (lambda z / (N dp)), scan span "
            f"{span[0]:.1f} x {span[1]:.1f} px, probe {'yes' if ds.probe is not None else 'no'}, {slices}"]
