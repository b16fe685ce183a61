"""The object of a peer's reconstruction and what the per-tool readers and seed writers share: :class:`PeerObject`
(the slices as stored, the scan where recorded, the scanned box, the separable images and the seeding rule), the
format names (:data:`PEERS`, :data:`SEED_FORMATS`), checks of complex arrays and of the separated part, the probe
amplitude over modes, small HDF5 readers and the copy-then-edit writer of seeds made from a peer's own file."""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from typing import Any, Optional

import h5py
import numpy as np

from ...atomic import InputError, atomic_write

PEERS = ("ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "ptycho_ddip")
SEED_FORMATS = ("ptyrad", "foldslice", "ptychodus", "ptypy", "adorym", "npy")


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
        from ...pipeline import scan_box

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
            from ...pipeline import slice_part

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
            from ...pipeline import seed_object

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


def _h5_array(h5: h5py.File, key: str) -> Optional[np.ndarray]:
    obj = h5.get(key)
    return np.asarray(obj[()]) if isinstance(obj, h5py.Dataset) else None


def _h5_text(h5: h5py.File, key: str) -> Optional[str]:
    value = _h5_array(h5, key)
    if value is None:
        return None
    value = value.ravel()[0] if value.ndim else value[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _copy_and_edit(source: str, path: str, overwrite: bool, edit) -> None:
    """Copy ``source`` to a temporary file beside ``path``, apply ``edit(h5)`` to it (r+), rename onto ``path``."""
    with atomic_write(path, overwrite) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as h5:
            edit(h5)
