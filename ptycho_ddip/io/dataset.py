"""The diffraction dataset model in SI units (:class:`DiffractionDataset`): validated arrays, no file I/O."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..atomic import InputError
from ._common import _check_name


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
