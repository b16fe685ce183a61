"""Peers' reconstructions in, seeds for the peers out.

:func:`read_peer` reads the object of a multislice reconstruction written by another code, recognised by file type
and layout (:func:`detect_peer`), as a :class:`PeerObject`: the slices (n_slices, H, W), the pixel size and the scan
(probe positions and probe) where the file records them. ``ptycho-ddip separate FILE`` separates the slices inside
the scanned box (:meth:`PeerObject.images`, the phase unless ``--part`` says otherwise), and ``--seed-for PEER``
writes them back into the peer's object with the pipeline's seeding rule (separated phase with the original
magnitude inside the box, everything else unchanged: :meth:`PeerObject.with_separated`) in the layout the peer loads
as its initial object (:func:`write_seed`).

Formats (each reader's docstring names the public source its layout was taken from):

* ``ptyrad``: PtyRAD's model ``model_iterNNNN.hdf5``; seed: a copy with ``obja``/``objp`` replaced (a minimal
  model file from another source);
* ``foldslice``: fold_slice / PtychoShelves ``Niter*.mat`` (v7.3, HDF5) or ``*_recons.mat`` (v5/v6/v7, scipy);
  seed: a copy with ``object`` replaced (a v5 MAT with ``object`` and ``p.dx_spec`` from another source);
* ``ptychodus``: a ptychodus product ``.h5``/``.hdf5``/``.npz`` (what ptychodus hands to pty-chi); seed: a copy with
  ``object`` replaced;
* ``ptypy``: a PtyPy ``.ptyr``, or the slices file of PtyPy's ThreePIE engine; seed: a copy with the object replaced;
* ``adorym``: Adorym's ``obj_mag_ds_N.tiff`` + ``obj_phase_ds_N.tiff`` or ``delta_ds_N.tiff`` + ``beta_ds_N.tiff``
  (y, x, z); seed: the same TIFF pair;
* ``ptycho_ddip``: a ptycho_ddip reconstruction (``object``, ``probe``, ``positions``); seed: ``npy``;
* ``npy`` (seed only): complex64 (n_slices, H, W), for ptycho_ddip's ``--init`` and pty-chi's ``initial_guess``.

Positions are converted to the project's convention (``(y, x)`` of the probe window's top-left corner in the object
array, pixels) only to find the scanned box, so a one-pixel ambiguity in a peer's convention does not matter. Peer
packages are never imported. Errors are :class:`~ptycho_ddip.atomic.InputError` naming the file, the field and the
fix.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import h5py
import numpy as np

from ..atomic import InputError, atomic_group, atomic_write, check_output_path
from ._common import TIFF_SUFFIXES, _name
from .sources import _list_datasets, _open_h5, _require_file, _tiff_to_zyx, parse_source, read_tiff

PEERS = ("ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "ptycho_ddip")
SEED_FORMATS = ("ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "npy")
ANGSTROM_M = 1e-10

_ADORYM_NAME = re.compile(r"^(?P<pre>.*?)(?P<kind>obj_mag|obj_phase|delta|beta)"
                          r"(?P<post>(_ds_\d+|_\d+_\d+)?(_rank_\d+)?)\.tiff?$", re.IGNORECASE)
_ADORYM_TWIN = {"obj_mag": "obj_phase", "obj_phase": "obj_mag", "delta": "beta", "beta": "delta"}


# ----------------------------------------------------------------------------------------------------------------------
# The object of a peer's reconstruction
# ----------------------------------------------------------------------------------------------------------------------

@dataclass
class PeerObject:
    """The object of a peer's multislice reconstruction, as stored, with what the file records of the scan.

    Attributes
    ----------
    format : str
        One of :data:`PEERS`.
    source : str
        The file read.
    layout : str
        Where the object was found in the file (for messages).
    kind : {"complex", "mag_phase", "delta_beta"}
        ``complex``: ``object`` holds the complex transmission; ``mag_phase``: the file stores real ``magnitude`` and
        ``phase`` (rad, not wrapped) and the seed keeps them real; ``delta_beta``: Adorym's refractive-index
        decrements, ``phase`` = delta and ``magnitude`` = beta (no transmission without the voxel size).
    object : numpy.ndarray or None
        complex (n_slices, H, W) (``kind="complex"``).
    phase, magnitude : numpy.ndarray or None
        float (n_slices, H, W) (other kinds).
    pixel_size_m : float or None
        Object pixel size, m, where recorded.
    positions_px : numpy.ndarray or None
        (n_pos, 2): (y, x) of the probe window's top-left corner in the object array, pixels.
    probe : numpy.ndarray or None
        (h, w) probe amplitude (all modes combined, sqrt(sum |P_k|^2)).
    slice_spacing_m : numpy.ndarray or None
        (n_slices - 1,) distances between slices, m, where recorded.
    details : dict
        What the seed writer needs to put an object back (dataset paths, storage IDs, the MAT version).
    """

    format: str
    source: str
    layout: str
    kind: str = "complex"
    object: Optional[np.ndarray] = None
    phase: Optional[np.ndarray] = None
    magnitude: Optional[np.ndarray] = None
    pixel_size_m: Optional[float] = None
    positions_px: Optional[np.ndarray] = None
    probe: Optional[np.ndarray] = None
    slice_spacing_m: Optional[np.ndarray] = None
    details: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        """(n_slices, H, W)."""
        return tuple((self.object if self.kind == "complex" else self.phase).shape)

    def transmission(self) -> np.ndarray:
        """The complex transmission (n_slices, H, W); InputError for Adorym's delta/beta."""
        if self.kind == "complex":
            return self.object
        if self.kind == "mag_phase":
            return (self.magnitude * np.exp(1j * self.phase)).astype(np.complex64)
        raise InputError(f"{self.source}: Adorym's delta/beta slices are not a complex transmission (that needs the "
                         f"voxel size); use Adorym's obj_mag/obj_phase output (unknown_type='real_imag') instead.")

    def box(self, threshold: float = 0.1, min_size: int = 32) -> tuple:
        """(y0, y1, x0, x1) of the scanned region (:func:`ptycho_ddip.pipeline.scan_box`); the whole object when the
        file records no positions or probe."""
        n, H, W = self.shape
        if (self.positions_px is None or self.probe is None or len(self.positions_px) == 0
                or not np.all(np.isfinite(self.positions_px))):
            return 0, H, 0, W
        from ..pipeline import scan_box

        h, w = self.probe.shape
        if h > H or w > W:
            return 0, H, 0, W
        pos = np.clip(np.asarray(self.positions_px, dtype=np.float64), 0, [H - h, W - w])
        return tuple(int(v) for v in scan_box(pos, self.probe, (H, W), threshold, min_size))

    def images(self, part: str = "phase") -> np.ndarray:
        """The real ``part`` ("phase" or "magnitude") of every slice inside :meth:`box`, float64 (n_slices, h, w).

        Complex objects give the phase as :func:`ptycho_ddip.pipeline.slice_part` does (offset so that it does not
        wrap inside the box); real phases (PtyRAD, Adorym) are taken as stored; delta/beta give delta/beta.
        """
        part = _check_part(part, self.source)
        if self.shape[0] < 2:
            raise InputError(f"{self.source}: {self.layout} holds {self.shape[0]} slice; separation needs a "
                             f"multislice reconstruction (2 or more slices).")
        y0, y1, x0, x1 = box = self.box()
        if self.kind == "complex":
            from ..pipeline import slice_part

            stack = slice_part(self.object, part, box)
        else:
            stack = self.phase if part == "phase" else self.magnitude
        return np.asarray(stack[:, y0:y1, x0:x1], dtype=np.float64)

    def with_separated(self, separated: np.ndarray, part: str = "phase") -> "PeerObject":
        """A copy holding ``separated`` (n_slices, h, w) put back inside :meth:`box` by the pipeline's seeding rule
        (:func:`ptycho_ddip.pipeline.seed_object`: the separated ``part`` inside the box, the other part and
        everything outside unchanged), in the file's own kind and dtype."""
        part = _check_part(part, self.source)
        y0, y1, x0, x1 = box = self.box()
        separated = np.asarray(separated, dtype=np.float64)
        if separated.shape != (self.shape[0], y1 - y0, x1 - x0):
            raise InputError(f"{self.source}: the separated slices have shape {separated.shape} but the scanned box "
                             f"of the object is {(self.shape[0], y1 - y0, x1 - x0)}; separate this file's slices.")
        if self.kind == "complex":
            from ..pipeline import seed_object

            obj = seed_object(self.object, separated, box, part).astype(self.object.dtype)
            return dataclasses.replace(self, object=obj)
        target = "phase" if part == "phase" else "magnitude"
        values = np.array(getattr(self, target), copy=True)
        inside = separated if (part == "phase" or self.kind == "delta_beta") else np.maximum(separated, 1e-3)
        values[:, y0:y1, x0:x1] = inside
        return dataclasses.replace(self, **{target: values})

    def summary(self) -> str:
        """One line: format, layout, shape, pixel size, scan."""
        n, H, W = self.shape
        pixel = f"pixel {self.pixel_size_m:.4g} m" if self.pixel_size_m else "pixel size not recorded"
        scan = (f"{len(self.positions_px)} probe positions" if self.positions_px is not None and self.probe is not None
                else "no scan recorded (the whole object is separated)")
        return f"{self.format} reconstruction: {self.layout}, {n} slice(s) of {H}x{W}, {pixel}, {scan}"


def _check_part(part: Optional[str], file: str) -> str:
    part = part or "phase"
    if part not in ("phase", "magnitude"):
        raise InputError(f"{file}: a peer's reconstruction is separated by its phase or magnitude, not {part!r}; "
                         f"pass --part phase or --part magnitude.")
    return part


def _probe_amplitude(probe: Any, mode_axes: tuple) -> Optional[np.ndarray]:
    """sqrt(sum |P|^2) over ``mode_axes``: one (h, w) amplitude for all probe modes."""
    if probe is None:
        return None
    probe = np.asarray(probe)
    if probe.ndim < 2 or probe.dtype.kind not in "biufc":
        return None
    amp = np.sqrt(np.sum(np.abs(probe) ** 2, axis=mode_axes)) if mode_axes else np.abs(probe)
    return amp if amp.ndim == 2 else None


def _complex(array: Any, file: str, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.names and {"real", "imag"} <= set(array.dtype.names):  # MATLAB v7.3 / HDF5 compound complex
        dtype = np.complex128 if array.dtype["real"].itemsize == 8 else np.complex64
        array = (array["real"] + 1j * array["imag"]).astype(dtype)
    if not np.iscomplexobj(array):
        raise InputError(f"{file}: {where} holds real values ({array.dtype}); expected the complex object.")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{file}: {where} has NaN or Inf values; give a finite reconstruction.")
    return array


# ----------------------------------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------------------------------

def _is_mat73(file: str) -> bool:
    with open(file, "rb") as fh:
        return fh.read(19) == b"MATLAB 7.3 MAT-file"


def _adorym_pair(file: str) -> Optional[tuple]:
    """(kind, twin path, mag/delta path, phase/beta path) when ``file`` is named like an Adorym object TIFF and its
    twin exists beside it, else None."""
    match = _ADORYM_NAME.match(os.path.basename(file))
    if not match:
        return None
    twin_kind = _ADORYM_TWIN[match["kind"].lower()]
    twin = os.path.join(os.path.dirname(file), f"{match['pre']}{twin_kind}{match['post']}"
                        f"{os.path.splitext(file)[1]}")
    if not os.path.isfile(twin):
        return None
    first, second = (file, twin) if match["kind"].lower() in ("obj_mag", "delta") else (twin, file)
    return ("mag_phase" if "obj" in match["kind"].lower() else "delta_beta"), twin, first, second


def detect_peer(path: str | os.PathLike[str]) -> Optional[str]:
    """The format (one of :data:`PEERS`) of a peer's reconstruction at ``path``, or None. Reads only the file's
    structure; never raises for unreadable files."""
    file = _name(path)
    if not os.path.isfile(file):
        return None
    suffix = pathlib.Path(file).suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return "adorym" if _adorym_pair(file) else None
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as npz:
                return "ptychodus" if {"object", "probe_position_x_m"} <= set(npz.files) else None
        if suffix == ".mat" and not h5py.is_hdf5(file):
            from scipy.io import whosmat

            return "foldslice" if any(name == "object" for name, _, _ in whosmat(file)) else None
        if not h5py.is_hdf5(file):
            return None
        with h5py.File(file, "r") as h5:
            if isinstance(h5.get("optimizable_tensors/objp"), h5py.Dataset):
                return "ptyrad"
            if isinstance(h5.get("object"), h5py.Dataset) and "probe_position_x_m" in h5:
                return "ptychodus"
            if isinstance(h5.get("content/obj"), h5py.Group) or isinstance(h5.get("content/objects"), h5py.Group):
                return "ptypy"
            if isinstance(h5.get("object"), h5py.Dataset) and (suffix == ".mat" or _is_mat73(file)):
                return "foldslice"
            if all(isinstance(h5.get(k), h5py.Dataset) for k in ("object", "probe", "positions", "loss")):
                return "ptycho_ddip"
    except (OSError, ValueError, KeyError):
        return None
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Readers, one per format
# ----------------------------------------------------------------------------------------------------------------------

def _h5_array(h5: h5py.File, key: str) -> Optional[np.ndarray]:
    obj = h5.get(key)
    return np.asarray(obj[()]) if isinstance(obj, h5py.Dataset) else None


def _h5_text(h5: h5py.File, key: str) -> Optional[str]:
    value = _h5_array(h5, key)
    if value is None:
        return None
    value = value.ravel()[0] if value.ndim else value[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def read_ptyrad(file: str) -> PeerObject:
    """A PtyRAD model file (HDF5, ``model_iterNNNN.hdf5``).

    Layout (chiahao3/ptyrad: src/ptyrad/io/save.py ``make_save_dict``/``save_dict_to_hdf5``;
    src/ptyrad/init/initializer.py ``_load_obj_from_ptyrad``, ``_load_pos_from_ptyrad``;
    src/ptyrad/core/models/ptycho.py ``get_obj_patches``): ``optimizable_tensors/obja`` and ``objp``, float32
    (omode, Nz, Ny, Nx), amplitude and phase (rad) of each slice (object mode 0 is used); ``optimizable_tensors/probe``
    complex (pmode, Ny, Nx); positions = ``model_attributes/crop_pos`` (N, 2) int (y, x) top-left of the probe
    window + ``optimizable_tensors/probe_pos_shifts`` (N, 2); pixel size ``model_attributes/dx`` in Angstrom
    (``params/init_params/probe_illum_type`` electron) or m (xray); ``model_attributes/slice_thickness`` likewise.
    PtyRAD loads an initial object from such a file with ``obj_source: 'PtyRAD'``, ``obj_params: FILE``.
    """
    with _open_h5(file, "PtyRAD model") as h5:
        obja, objp = _h5_array(h5, "optimizable_tensors/obja"), _h5_array(h5, "optimizable_tensors/objp")
        if obja is None or objp is None:
            raise InputError(f"{file}: PtyRAD field optimizable_tensors/obja or objp is missing; give a PtyRAD model "
                             f"file (model_iterNNNN.hdf5).")
        if objp.ndim != 4 or obja.shape != objp.shape:
            raise InputError(f"{file}: PtyRAD optimizable_tensors/objp has shape {objp.shape} (obja {obja.shape}); "
                             f"expected equal (omode, Nz, Ny, Nx).")
        if not (np.all(np.isfinite(obja)) and np.all(np.isfinite(objp))):
            raise InputError(f"{file}: PtyRAD optimizable_tensors/obja or objp has NaN or Inf values.")
        unit = _h5_text(h5, "params/init_params/probe_illum_type")
        dx = _h5_array(h5, "model_attributes/dx")
        scale = None
        if dx is not None:
            dx = float(np.ravel(dx)[0])
            scale = ANGSTROM_M if (unit == "electron" or (unit is None and dx > 1e-4)) else 1.0
        crop = _h5_array(h5, "model_attributes/crop_pos")
        shifts = _h5_array(h5, "optimizable_tensors/probe_pos_shifts")
        positions = None
        if crop is not None and crop.ndim == 2 and crop.shape[1] == 2:
            positions = crop.astype(np.float64)
            if shifts is not None and shifts.shape == crop.shape:
                positions = positions + shifts
        thickness = _h5_array(h5, "model_attributes/slice_thickness")
        n = objp.shape[1]
        spacing = None
        if thickness is not None and scale is not None and np.size(thickness) in (1, max(n - 1, 1)):
            spacing = np.broadcast_to(np.ravel(thickness).astype(np.float64) * scale, (max(n - 1, 0),)).copy()
        return PeerObject(
            format="ptyrad", source=file, kind="mag_phase",
            layout="optimizable_tensors/obja, objp" + (f" (object mode 0 of {objp.shape[0]})" if objp.shape[0] > 1
                                                      else ""),
            magnitude=obja[0], phase=objp[0], pixel_size_m=None if dx is None else dx * scale,
            positions_px=positions, probe=_probe_amplitude(_h5_array(h5, "optimizable_tensors/probe"), (0,)),
            slice_spacing_m=spacing, details={"omode": objp.shape[0]})


def _mat_stack(array: np.ndarray, file: str, where: str) -> np.ndarray:
    """A MATLAB-order object (Ny, Nx), (Ny, Nx, Nl) or (Ny, Nx, modes, Nl) as (Nl, Ny, Nx) (object mode 0)."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3:
        return np.moveaxis(array, 2, 0)
    if array.ndim == 4:
        return np.moveaxis(array[:, :, 0, :], 2, 0)
    raise InputError(f"{file}: {where} has MATLAB shape {array.shape}; expected (Ny, Nx, Nlayers).")


def _mat_unstack(original: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_mat_stack`: ``original`` (MATLAB order) with object mode 0 replaced by ``stack``."""
    out = np.array(original, copy=True)
    if out.ndim == 2:
        out[...] = stack[0]
    elif out.ndim == 3:
        out[...] = np.moveaxis(stack, 0, 2)
    else:
        out[:, :, 0, :] = np.moveaxis(stack, 0, 2)
    return out


def _foldslice_scan(obj_shape: tuple, probe: Optional[np.ndarray], p: dict, outputs: dict) -> Optional[np.ndarray]:
    """Top-left (y, x) positions in the object, px: ``p.positions`` (PSI's 0-based top-left offsets) when present,
    else ``outputs.probe_positions`` (x, y) relative to the centre: start = pos + ceil(N_o/2 - N_p/2) (1-based,
    fold_slice ptycho/+engines/+GPU_MS/+shared/find_reconstruction_ROI.m) - 1."""
    pos = p.get("positions")
    if pos is not None and np.ndim(pos) == 2 and np.shape(pos)[1] == 2:
        return np.asarray(pos, dtype=np.float64)
    pos = outputs.get("probe_positions")
    if pos is None or probe is None or np.ndim(pos) != 2 or np.shape(pos)[1] != 2:
        return None
    offset = np.ceil(np.asarray(obj_shape) / 2 - np.asarray(probe.shape) / 2) - 1
    return np.asarray(pos, dtype=np.float64)[:, ::-1] + offset


def _mat73_read(h5: h5py.File, key: str) -> Any:
    """A MATLAB v7.3 variable in MATLAB axis order (HDF5 stores it transposed); structs as dicts of numbers."""
    obj = h5.get(key)
    if isinstance(obj, h5py.Group):
        return {k: _mat73_read(obj, k) for k in obj if isinstance(obj[k], (h5py.Dataset, h5py.Group))}
    if not isinstance(obj, h5py.Dataset) or obj.dtype.kind == "O" or obj.dtype == h5py.ref_dtype:
        return None
    value = np.asarray(obj[()])
    return value.T if value.ndim > 1 else value


def read_foldslice(file: str) -> PeerObject:
    """A fold_slice / PtychoShelves reconstruction (``.mat``).

    Layout (yijiang1/fold_slice: ptycho/+engines/+GPU_MS/ptycho_solver.m saves ``Niter%d.mat`` with -v7.3 (HDF5 with a
    512-byte MATLAB header): ``object`` complex (Ny, Nx, Nlayers), ``probe`` (Ny, Nx, modes[, variable modes]),
    ``p`` (``dx_spec`` pixel size in m, ``multi_slice_param.z_distance``) and ``outputs.probe_positions`` (N, 2) (x, y)
    px from the object's centre; ptycho/+core/+save/reconstructions_as_mat.m saves ``*_recons.mat`` with -v6:
    ``object`` (Ny, Nx, 1, Nlayers), ``probe``, ``p`` with ``positions`` (N, 2) (y, x) top-left). v7.3 is read with
    h5py (axes reversed back to MATLAB order, complex stored as a {real, imag} compound), older files with scipy.
    fold_slice loads an initial object from ``p.initial_iterate_object_file`` (ptycho/+core/prepare_initial_object.m;
    ``p.model_object = false``, ``p.multiple_layers_obj = true`` keeps the layers).
    """
    _require_file(file, "fold_slice .mat file")
    if h5py.is_hdf5(file):
        with _open_h5(file, "fold_slice .mat file") as h5:
            if not isinstance(h5.get("object"), h5py.Dataset):
                present = ", ".join(_list_datasets(h5)[:20]) or "(none)"
                raise InputError(f"{file}: MAT variable 'object' not found (datasets: {present}); give a fold_slice "
                                 f"reconstruction (Niter*.mat).")
            raw = _complex(np.asarray(h5["object"][()]).T, file, "MAT variable 'object'")
            probe, p, outputs = _mat73_read(h5, "probe"), _mat73_read(h5, "p") or {}, _mat73_read(h5, "outputs") or {}
            if probe is not None and np.asarray(probe).dtype.names:
                probe = _complex(probe, file, "MAT variable 'probe'")
        version = "7.3"
    else:
        from scipy.io import loadmat

        try:
            mat = loadmat(file, simplify_cells=True)
        except Exception as exc:  # scipy raises several types for corrupt or unsupported files
            raise InputError(f"{file}: cannot be read as a MAT file ({exc}); save it again from MATLAB.") from exc
        if "object" not in mat:
            raise InputError(f"{file}: MAT variable 'object' not found (variables: "
                             f"{', '.join(k for k in mat if not k.startswith('__'))}); give a fold_slice "
                             f"reconstruction.")
        raw = _complex(mat["object"], file, "MAT variable 'object'")
        probe, p, outputs = mat.get("probe"), mat.get("p") or {}, mat.get("outputs") or {}
        version = "5"
    p = p if isinstance(p, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    stack = _mat_stack(raw, file, "MAT variable 'object'")
    probe_amp = None
    if probe is not None and np.ndim(probe) >= 2:
        probe = np.asarray(probe)
        probe_amp = _probe_amplitude(probe.reshape(probe.shape[:2] + (-1,)), (2,))
    dx = p.get("dx_spec")
    spacing = (p.get("multi_slice_param") or {}).get("z_distance") if isinstance(p.get("multi_slice_param"),
                                                                                 dict) else None
    return PeerObject(
        format="foldslice", source=file, layout=f"MAT v{version} variable 'object'", object=stack,
        pixel_size_m=None if dx is None else float(np.ravel(dx)[0]),
        positions_px=_foldslice_scan(stack.shape[1:], probe_amp, p, outputs), probe=probe_amp,
        slice_spacing_m=None if spacing is None else np.ravel(spacing)[: max(stack.shape[0] - 1, 0)].astype(float),
        details={"version": version, "matlab_shape": raw.shape})


def read_ptychodus(file: str) -> PeerObject:
    """A ptychodus product file (HDF5 ``.h5``/``.hdf5`` or ``.npz``; the files ptychodus hands to pty-chi).

    Layout (AdvancedPhotonSource/ptychodus: src/ptychodus/plugins/h5_product_file.py and npz_product_file.py;
    src/ptychodus/api/object.py ``ObjectGeometry.map_coordinates_probe_to_object``): ``object`` complex
    (n_layers, H, W) (or (H, W)); HDF5: attributes ``pixel_width_m``, ``pixel_height_m``, ``center_x_m``,
    ``center_y_m`` of ``object``; NPZ: arrays ``object_pixel_width_m``, ``object_pixel_height_m``,
    ``object_center_x_m``, ``object_center_y_m``; ``object_layer_spacing_m`` (n_layers - 1,); ``probe`` complex
    (..., h, w); ``probe_position_x_m``, ``probe_position_y_m`` (probe centres, m): column
    ``(x - center_x) / pixel_width + W / 2`` (rows likewise). ptychodus opens such a product and reconstructs it
    with pty-chi from its object.
    """
    _require_file(file, "ptychodus product")
    if pathlib.Path(file).suffix.lower() == ".npz":
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zip and format errors
            raise InputError(f"{file}: cannot be read as a ptychodus NPZ product ({exc}).") from exc
        geometry = {k: arrays.get(f"object_{k}") for k in ("pixel_width_m", "pixel_height_m", "center_x_m",
                                                           "center_y_m")}
        layout = "NPZ array 'object'"
    else:
        with _open_h5(file, "ptychodus product") as h5:
            arrays = {k: h5[k][()] for k in h5 if isinstance(h5[k], h5py.Dataset)}
            geometry = {k: h5["object"].attrs.get(k) for k in ("pixel_width_m", "pixel_height_m", "center_x_m",
                                                               "center_y_m")} if "object" in h5 else {}
        layout = "HDF5 dataset 'object'"
    if "object" not in arrays:
        raise InputError(f"{file}: ptychodus field 'object' is missing; give a ptychodus product file.")
    obj = _complex(arrays["object"], file, "ptychodus 'object'")
    obj = obj[None] if obj.ndim == 2 else obj
    if obj.ndim != 3:
        raise InputError(f"{file}: ptychodus 'object' has shape {obj.shape}; expected (n_layers, H, W).")
    pixel = geometry.get("pixel_width_m")
    pixel = None if pixel is None else float(np.ravel(pixel)[0])
    probe = arrays.get("probe")
    probe_amp = None
    if probe is not None and np.ndim(probe) >= 2:
        probe_amp = _probe_amplitude(np.reshape(probe, (-1,) + np.shape(probe)[-2:]), (0,))
    positions = None
    xs, ys = arrays.get("probe_position_x_m"), arrays.get("probe_position_y_m")
    height = geometry.get("pixel_height_m")
    if (xs is not None and ys is not None and pixel and height is not None and probe_amp is not None
            and np.size(xs) == np.size(ys)):
        H, W = obj.shape[1:]
        cx, cy = (float(np.ravel(geometry.get(k, 0.0) if geometry.get(k) is not None else 0.0)[0])
                  for k in ("center_x_m", "center_y_m"))
        col = (np.ravel(xs) - cx) / pixel + W / 2 - probe_amp.shape[1] / 2
        row = (np.ravel(ys) - cy) / float(np.ravel(height)[0]) + H / 2 - probe_amp.shape[0] / 2
        positions = np.stack([row, col], axis=1)
    spacing = arrays.get("object_layer_spacing_m")
    return PeerObject(
        format="ptychodus", source=file, layout=layout, object=obj, pixel_size_m=pixel, positions_px=positions,
        probe=probe_amp, slice_spacing_m=None if spacing is None else np.ravel(spacing).astype(float),
        details={"npz": layout.startswith("NPZ"), "ndim": np.ndim(arrays["object"])})


def _sorted_groups(group: h5py.Group) -> list:
    def key(name: str) -> tuple:
        digits = re.findall(r"\d+", name)
        return (int(digits[-1]) if digits else -1, name)

    return sorted((k for k in group if isinstance(group[k], h5py.Group)), key=key)


def read_ptypy(file: str) -> PeerObject:
    """A PtyPy reconstruction (``.ptyr``) or the slices file of PtyPy's ThreePIE multislice engine.

    Layout (ptycho/ptypy: ptypy/io/h5rw.py ``h5write`` (dicts as groups, arrays as datasets);
    ptypy/core/ptycho.py ``Ptycho.save_run``: ``header/kind`` and ``content/obj/<storage ID>`` =
    ``Storage._to_dict()`` with ``data`` complex (layers, H, W), ``_psize`` (2,) m, ``_origin`` (2,) m (physical
    coordinates of pixel [0, 0]); ``content/probe/<ID>/data`` (modes, h, w); ``content/positions/<ID>`` (N, 2)
    physical view centres (dump files); ptypy/core/classes.py: view top-left = round((coord - origin) / psize) -
    shape // 2; ptypy/custom/threepie.py ``engine_finalize``: ``content/objects/<container>_o_<i>/<ID>/data``
    (1, H, W) per slice i, ``content/slice_thickness``). The layers of ``content/obj`` are read as slices. PtyPy
    loads an initial object from a .ptyr with ``scans.<name>.sample.model = 'recon'``, ``sample.recon.rfile``
    (ptypy/core/sample.py, ptypy/utils/scripts.py ``load_from_ptyr``).
    """
    with _open_h5(file, "PtyPy file") as h5:
        if isinstance(h5.get("content/objects"), h5py.Group):  # ThreePIE slices
            objects = h5["content/objects"]
            slices, keys = [], []
            for name in _sorted_groups(objects):
                storages = _sorted_groups(objects[name])
                if not storages or not isinstance(objects[name][storages[0]].get("data"), h5py.Dataset):
                    continue
                key = f"content/objects/{name}/{storages[0]}"
                slices.append(_complex(h5[key + "/data"][()], file, key + "/data").reshape(
                    (-1,) + h5[key + "/data"].shape[-2:])[0])
                keys.append(key)
            if not slices:
                raise InputError(f"{file}: PtyPy content/objects holds no slice storages with data.")
            obj, storage = np.stack(slices), keys[0]
            thickness = _h5_array(h5, "content/slice_thickness")
            spacing = None if thickness is None else np.broadcast_to(np.ravel(thickness).astype(float),
                                                                     (len(slices) - 1,)).copy()
            layout = f"ThreePIE slices content/objects/*/{storages[0]}/data"
        else:
            group = h5.get("content/obj")
            storages = _sorted_groups(group) if isinstance(group, h5py.Group) else []
            storages = [s for s in storages if isinstance(group[s].get("data"), h5py.Dataset)]
            if not storages:
                raise InputError(f"{file}: PtyPy field content/obj/<ID>/data is missing; give a .ptyr "
                                 f"reconstruction.")
            storage = f"content/obj/{storages[0]}"
            obj = _complex(h5[storage + "/data"][()], file, storage + "/data")
            obj = obj[None] if obj.ndim == 2 else obj
            keys, spacing = [storage], None
            layout = f"{storage}/data" + (f" (first of {len(storages)} storages)" if len(storages) > 1 else "")
        psize, origin = _h5_array(h5, storage + "/_psize"), _h5_array(h5, storage + "/_origin")
        storage_id = storage.rsplit("/", 1)[1]
        probe = None
        probe_group = h5.get("content/probe")
        if isinstance(probe_group, h5py.Group):
            ids = [s for s in _sorted_groups(probe_group) if isinstance(probe_group[s].get("data"), h5py.Dataset)]
            if ids:
                probe = _probe_amplitude(probe_group[ids[0]]["data"][()], (0,))
        coords = _h5_array(h5, f"content/positions/{storage_id}")
    positions = None
    if coords is not None and psize is not None and origin is not None and probe is not None and coords.ndim == 2:
        pix = np.round((coords[:, :2] - np.ravel(origin)[:2]) / np.ravel(psize)[:2] + 1e-5)
        positions = pix - np.asarray(probe.shape) // 2
    return PeerObject(
        format="ptypy", source=file, layout=layout, object=obj,
        pixel_size_m=None if psize is None else float(np.ravel(psize)[0]), positions_px=positions, probe=probe,
        slice_spacing_m=spacing, details={"keys": keys})


def read_adorym(file: str) -> PeerObject:
    """Adorym's object output: a TIFF pair (y, x, z) beside each other.

    Layout (mdw771/adorym: adorym/util.py ``output_object``: ``obj_mag_ds_N.tiff`` + ``obj_phase_ds_N.tiff``
    (``unknown_type='real_imag'``: magnitude and phase (rad)) or ``delta_ds_N.tiff`` + ``beta_ds_N.tiff``
    (``'delta_beta'``), float32 arrays indexed [y, x, z]; ``initialize_object_for_dp``: Adorym starts from
    ``initial_guess=[first, second]`` arrays of that pair). Either file of a pair may be given; its twin must lie
    beside it. Adorym keeps the positions in the dataset file, so the whole object is separated.
    """
    pair = _adorym_pair(file)
    if pair is None:
        _require_file(file, "Adorym TIFF")
        raise InputError(f"{file}: not an Adorym object TIFF pair; give obj_phase_ds_N.tiff (or delta_ds_N.tiff) with "
                         f"its obj_mag (or beta) twin beside it.")
    kind, _, first, second = pair
    arrays = []
    for f in (first, second):
        a = read_tiff(f)
        a = a[None] if a.ndim == 2 else _tiff_to_zyx(a, f, "yxz")
        if a.ndim != 3 or a.dtype.kind not in "biuf":
            raise InputError(f"{f}: has shape {a.shape} ({a.dtype}); expected an Adorym object (y, x, z), real.")
        if not np.all(np.isfinite(a)):
            raise InputError(f"{f}: has NaN or Inf values.")
        arrays.append(a)
    if arrays[0].shape != arrays[1].shape:
        raise InputError(f"{first} and {second}: shapes {arrays[0].shape} and {arrays[1].shape} differ; give the two "
                         f"files of one Adorym output.")
    return PeerObject(
        format="adorym", source=file, kind=kind,
        layout=f"{os.path.basename(first)} + {os.path.basename(second)} (y, x, z)",
        magnitude=arrays[0].astype(np.float64), phase=arrays[1].astype(np.float64),
        details={"files": (first, second)})


def read_ptycho_ddip(file: str) -> PeerObject:
    """A ptycho_ddip reconstruction (:func:`ptycho_ddip.io.write_reconstruction`): ``object`` complex
    (n_slices, H, W), ``probe`` (h, w), ``positions`` (n, 2) (y, x) top-left, pixels."""
    with _open_h5(file, "reconstruction") as h5:
        obj = _complex(h5["object"][()], file, "object")
        probe, positions = np.asarray(h5["probe"][()]), np.asarray(h5["positions"][()], dtype=np.float64)
    return PeerObject(format="ptycho_ddip", source=file, layout="object", object=obj,
                      positions_px=positions if positions.ndim == 2 else None,
                      probe=_probe_amplitude(probe, () if probe.ndim == 2 else (0,)))


READERS = {"ptyrad": read_ptyrad, "foldslice": read_foldslice, "ptychodus": read_ptychodus, "ptypy": read_ptypy,
           "adorym": read_adorym, "ptycho_ddip": read_ptycho_ddip}


def read_peer(path: str | os.PathLike[str], format: Optional[str] = None) -> PeerObject:
    """Read a peer's reconstruction; ``format`` (one of :data:`PEERS`) defaults to :func:`detect_peer`.

    Raises
    ------
    InputError
        The file is missing, not a recognised reconstruction, or its fields are missing or inconsistent.
    """
    file = _name(path)
    _require_file(file, "reconstruction")
    fmt = format or detect_peer(file)
    if fmt is None:
        raise InputError(f"{file}: not a reconstruction ptycho_ddip recognises (PtyRAD model .hdf5, fold_slice .mat, "
                         f"ptychodus product .h5/.npz, PtyPy .ptyr, Adorym obj_mag/obj_phase TIFF pair, ptycho_ddip "
                         f"reconstruction); name the dataset instead: FILE.h5:/path --part phase.")
    if fmt not in READERS:
        raise InputError(f"{file}: unknown reconstruction format {fmt!r}; use one of {', '.join(PEERS)}.")
    return READERS[fmt](file)


# ----------------------------------------------------------------------------------------------------------------------
# Hooks used by the input readers (ptycho_ddip.io.sources, ptycho_ddip.io.results) and the CLI
# ----------------------------------------------------------------------------------------------------------------------

def peer_images(spec: str, part: Optional[str]) -> Optional[tuple]:
    """(images (n_slices, h, w) float64, display name) when ``spec`` is a peer's reconstruction named without a
    dataset path, else None (:func:`ptycho_ddip.io.read_images` then reads it as NPY/TIFF/HDF5)."""
    file, dataset = parse_source(os.fspath(spec))
    if dataset is not None:
        return None
    fmt = detect_peer(file)
    if fmt is None:
        return None
    peer = read_peer(file, fmt)
    y0, y1, x0, x1 = peer.box()
    return peer.images(part), f"{file} ({fmt}, scanned box y {y0}:{y1}, x {x0}:{x1})"


def object_guess(file: str) -> Optional[tuple]:
    """(complex object (n_slices, H, W), display name) of a peer's reconstruction, for ``--init FILE``; None for
    other files (and for ptycho_ddip's own results, read as before)."""
    fmt = detect_peer(file)
    if fmt is None or fmt == "ptycho_ddip":
        return None
    peer = read_peer(file, fmt)
    return peer.transmission(), f"{file} ({fmt} {peer.layout})"


def default_part(sources: Sequence[str]) -> Optional[str]:
    """"phase" when every source is a peer's reconstruction named without a dataset path, else None."""
    sources = [os.fspath(s) for s in sources]
    if sources and all(parse_source(s)[1] is None and detect_peer(parse_source(s)[0]) for s in sources):
        return "phase"
    return None


def describe(path: str | os.PathLike[str]) -> list:
    """Lines for ``ptycho-ddip info``: what ptycho_ddip makes of a CXI file or a peer's reconstruction."""
    from .cxi import describe_cxi, is_cxi

    file = _name(path)
    if is_cxi(file):
        return describe_cxi(file)
    fmt = detect_peer(file)
    if fmt is None:
        return []
    try:
        return [read_peer(file, fmt).summary()]
    except InputError as exc:
        return [f"{fmt} reconstruction, not readable: {exc}"]


# ----------------------------------------------------------------------------------------------------------------------
# Seeds: writers, one per peer
# ----------------------------------------------------------------------------------------------------------------------

def seed_paths(format: str, out_path: str | os.PathLike[str], peer: PeerObject) -> list:
    """The file(s) ``--seed-for FORMAT`` writes beside the separation result ``OUT.h5``: ``OUT_seed_FORMAT.ext``."""
    out = os.fspath(out_path)
    stem = out[:-3] if out.endswith(".h5") else os.path.splitext(out)[0]
    if format == "adorym":
        names = ("delta", "beta") if peer.kind == "delta_beta" else ("obj_mag", "obj_phase")
        return [f"{stem}_seed_adorym_{n}.tiff" for n in names]
    suffix = {"ptyrad": ".hdf5", "foldslice": ".mat", "npy": ".npy",
              "ptychodus": pathlib.Path(peer.source).suffix or ".h5",
              "ptypy": pathlib.Path(peer.source).suffix or ".ptyr"}[format]
    return [f"{stem}_seed_{format}{suffix}"]


def check_seed(format: str, sources: Sequence[str], out_path: str, overwrite: bool = False) -> PeerObject:
    """Check before fitting that ``--seed-for FORMAT`` can be written for ``sources``; returns the peer object.

    Raises
    ------
    InputError
        Not exactly one source, a source that is not a recognised reconstruction, a seed this source cannot give
        (a ptychodus or PtyPy seed needs a file of that tool to copy; Adorym's delta/beta only gives Adorym seeds),
        or an output that cannot be written (FileExistsError without ``overwrite``).
    """
    if format not in SEED_FORMATS:
        raise InputError(f"--seed-for {format}: unknown; use one of {', '.join(SEED_FORMATS)}.")
    sources = [os.fspath(s) for s in sources]
    if len(sources) != 1 or parse_source(sources[0])[1] is not None:
        raise InputError(f"--seed-for needs one reconstruction file given without a dataset path (got "
                         f"{', '.join(sources)}); give the peer's file itself.")
    peer = read_peer(sources[0])
    if format in ("ptychodus", "ptypy") and peer.format != format:
        raise InputError(f"{peer.source}: --seed-for {format} puts the separated slices back into a {format} file, "
                         f"and this is a {peer.format} reconstruction; use --seed-for npy (or the peer's own tool).")
    if peer.kind == "delta_beta" and format != "adorym":
        raise InputError(f"{peer.source}: Adorym's delta/beta slices are not a complex transmission; use --seed-for "
                         f"adorym.")
    for path in seed_paths(format, out_path, peer):
        check_output_path(path, overwrite)
    return peer


def _copy_and_edit(source: str, path: str, overwrite: bool, edit) -> None:
    """Copy ``source`` to a temporary file beside ``path``, apply ``edit(h5)`` to it (r+), rename onto ``path``."""
    with atomic_write(path, overwrite) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as h5:
            edit(h5)


def _write_ptyrad(peer: PeerObject, path: str, overwrite: bool) -> str:
    if peer.format == "ptyrad":
        def edit(h5: h5py.File) -> None:
            for key, values in (("obja", peer.magnitude), ("objp", peer.phase)):
                dset = h5[f"optimizable_tensors/{key}"]
                data = dset[()]
                data[0] = values
                dset[...] = data
        _copy_and_edit(peer.source, path, overwrite, edit)
    else:
        obj = peer.transmission()
        with atomic_write(path, overwrite) as tmp, h5py.File(tmp, "w") as h5:
            h5.create_dataset("optimizable_tensors/obja", data=np.abs(obj)[None].astype(np.float32))
            h5.create_dataset("optimizable_tensors/objp", data=np.angle(obj)[None].astype(np.float32))
            h5.attrs["written_by"] = "ptycho_ddip --seed-for ptyrad"
    return (f"PtyRAD: in init_params set obj_source: 'PtyRAD', obj_params: '{path}' (obj_Nlayer: {peer.shape[0]}); "
            f"probe and positions as before")


def _write_foldslice(peer: PeerObject, path: str, overwrite: bool) -> str:
    obj = peer.transmission()
    if peer.format == "foldslice" and peer.details.get("version") == "7.3":
        def edit(h5: h5py.File) -> None:
            dset = h5["object"]
            stored = np.asarray(dset[()])  # HDF5 order: MATLAB's reversed
            matlab = stored["real"].T + 1j * stored["imag"].T
            matlab = _mat_unstack(matlab, obj)
            out = np.empty(stored.shape, dtype=stored.dtype)
            out["real"], out["imag"] = matlab.real.T, matlab.imag.T
            dset[...] = out
        _copy_and_edit(peer.source, path, overwrite, edit)
    else:
        from scipy.io import loadmat, savemat

        if peer.format == "foldslice":  # every variable of the source, its object replaced
            content = {k: v for k, v in loadmat(peer.source).items() if not k.startswith("__")}
            content["object"] = _mat_unstack(content["object"], obj).astype(content["object"].dtype)
        else:
            content = {"object": np.moveaxis(obj, 0, 2).astype(np.complex64)}
            if peer.pixel_size_m:
                content["p"] = {"dx_spec": np.array([[peer.pixel_size_m, peer.pixel_size_m]])}
        with atomic_write(path, overwrite) as tmp:
            savemat(tmp, content, do_compression=True)
    return (f"fold_slice: p.model_object = false; p.initial_iterate_object_file{{1}} = '{path}'; "
            f"p.multiple_layers_obj = true;")


def _write_ptychodus(peer: PeerObject, path: str, overwrite: bool) -> str:
    obj = peer.object if peer.details.get("ndim", 3) == 3 else peer.object[0]
    if peer.details.get("npz"):
        with np.load(peer.source, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["object"] = obj.astype(arrays["object"].dtype)
        with atomic_write(path, overwrite) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    else:
        def edit(h5: h5py.File) -> None:
            h5["object"][...] = obj.astype(h5["object"].dtype)
        _copy_and_edit(peer.source, path, overwrite, edit)
    return (f"ptychodus: open '{path}' as the product and reconstruct with pty-chi from its object "
            f"(pty-chi API: ObjectOptions.initial_guess = its 'object' array)")


def _write_ptypy(peer: PeerObject, path: str, overwrite: bool) -> str:
    def edit(h5: h5py.File) -> None:
        keys = peer.details["keys"]
        for i, key in enumerate(keys):
            dset = h5[key + "/data"]
            data = dset[()]
            if len(keys) == 1:
                data.reshape((-1,) + data.shape[-2:])[: peer.shape[0]] = peer.object
            else:
                data.reshape((-1,) + data.shape[-2:])[0] = peer.object[i]
            dset[...] = data
    _copy_and_edit(peer.source, path, overwrite, edit)
    if len(peer.details["keys"]) > 1:
        return (f"PtyPy: '{path}' holds the separated ThreePIE slices (ThreePIE starts every slice from one object, "
                f"so load a slice into the object storage yourself)")
    return f"PtyPy: p.scans.<name>.sample.model = 'recon'; p.scans.<name>.sample.recon = u.Param(rfile='{path}')"


def _write_adorym(peer: PeerObject, paths: list, overwrite: bool) -> str:
    import tifffile

    if peer.kind in ("mag_phase", "delta_beta"):
        first, second = peer.magnitude, peer.phase
    else:
        obj = peer.transmission()
        first, second = np.abs(obj), np.angle(obj)
    with atomic_group(paths, overwrite) as tmps:
        for tmp, stack in zip(tmps, (first, second)):
            tifffile.imwrite(tmp, np.ascontiguousarray(np.moveaxis(stack, 0, 2), dtype=np.float32),
                             photometric="minisblack")
    unknown = "delta_beta" if peer.kind == "delta_beta" else "real_imag"
    return (f"Adorym: initial_guess=[dxchange.read_tiff('{paths[0]}'), dxchange.read_tiff('{paths[1]}')] with "
            f"unknown_type='{unknown}'")


def _write_npy(peer: PeerObject, path: str, overwrite: bool) -> str:
    obj = peer.transmission().astype(np.complex64)
    with atomic_write(path, overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, obj)
    return (f"ptycho_ddip: --init {path}; pty-chi: ObjectOptions.initial_guess = numpy.load('{path}'); PtyRAD: "
            f"obj_source: 'custom' with numpy.load('{path}')[None]")


def write_seed(format: str, sources: Sequence[str], separated: np.ndarray, out_path: str,
               part: Optional[str] = "phase", overwrite: bool = False) -> str:
    """Write the separated slices back into the peer's object as the initial object of ``format``'s next run.

    Parameters
    ----------
    format : str
        One of :data:`SEED_FORMATS`.
    sources : sequence of str
        The one reconstruction file that was separated.
    separated : numpy.ndarray
        (n_slices, h, w), the separation's ``separated`` (the scanned box of :meth:`PeerObject.images`).
    out_path : str
        The separation result ``OUT.h5``; the seed goes beside it (:func:`seed_paths`).
    part : {"phase", "magnitude"}
        The part that was separated.
    overwrite : bool
        Whether existing seed files may be replaced.

    Returns
    -------
    str
        One line: the file(s) written and the option to use on the peer's side.
    """
    peer = check_seed(format, sources, out_path, overwrite)
    seeded = peer.with_separated(separated, part or "phase")
    paths = seed_paths(format, out_path, peer)
    if format == "adorym":
        hint = _write_adorym(seeded, paths, overwrite)
    else:
        writer = {"ptyrad": _write_ptyrad, "foldslice": _write_foldslice, "ptychodus": _write_ptychodus,
                  "ptypy": _write_ptypy, "npy": _write_npy}[format]
        hint = writer(seeded, paths[0], overwrite)
    return f"wrote {' and '.join(paths)} (seed for {format}); {hint}"
