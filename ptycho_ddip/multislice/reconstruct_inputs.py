"""Checks of a dataset against the reconstruction options before any work: the slice positions and object shape a
reconstruction uses (:func:`resolve_slice_positions`, :func:`resolve_object_shape`), data it cannot use
(:func:`check_dataset` raises :class:`ptycho_ddip.io.InputError` naming the file and the fix) and the notice for
a dataset without a probe (:func:`probe_notice`)."""
from __future__ import annotations

import math

import numpy as np

from ..atomic import InputError
from ..io.dataset import DiffractionDataset
from .forward import MultisliceForward, PositionError
from .reconstruct_options import ReconstructionOptions


# ------------------------------------------------------------------------------------------------ input checks
def _name(dataset: DiffractionDataset) -> str:
    return dataset.source or "dataset"


def resolve_slice_positions(dataset: DiffractionDataset, options: ReconstructionOptions) -> np.ndarray:
    """Slice positions (m): the options' override, else the dataset's; checked against ``n_slices``."""
    if options.slice_pos_m is not None:
        pos = np.asarray(options.slice_pos_m, dtype=np.float64)
    else:
        pos = np.asarray(dataset.slice_pos_m, dtype=np.float64).reshape(-1)
        if pos.size == 0:
            if options.n_slices == 1:
                return np.zeros(1)
            raise InputError(f"{_name(dataset)}: metadata/slice_pos_cm is missing; give the slice positions with "
                             f"the option slice_pos_m (metres), e.g. [0, 10e-6]")
    if options.n_slices is not None and pos.size != options.n_slices:
        if options.slice_pos_m is None and options.n_slices == 1:
            return pos[:1]
        raise InputError(f"{_name(dataset)}: the dataset has {pos.size} slice positions but n_slices is "
                         f"{options.n_slices}; give slice_pos_m with {options.n_slices} entries")
    if not np.all(np.isfinite(pos)) or np.any(np.diff(pos) <= 0):
        raise InputError(f"{_name(dataset)}: slice positions {pos.tolist()} must be finite and strictly increasing")
    return pos


def resolve_object_shape(dataset: DiffractionDataset, options: ReconstructionOptions) -> tuple:
    """(H, W): the options', the dataset's, or the smallest array holding every probe window."""
    if options.object_shape is not None:
        return tuple(options.object_shape)
    if dataset.object_shape is not None:
        return tuple(dataset.object_shape)
    h, w = dataset.detector_shape
    top = np.floor(np.asarray(dataset.positions_px)).max(axis=0)
    return int(top[0]) + h, int(top[1]) + w


def probe_notice(dataset: DiffractionDataset, options: ReconstructionOptions) -> str | None:
    """One line for the user when the dataset holds no probe (``metadata/probe``), else None.

    The reconstruction then starts from a Gaussian guess, which is far from most real probes: the line says so and,
    unless the probe is being refined, suggests ``--optimize-probe``.
    """
    if dataset.probe is not None:
        return None
    fwhm = options.probe_fwhm_m or dataset.pixel_size_m * min(dataset.detector_shape) / 4.0
    text = (f"note: {_name(dataset)} has no metadata/probe: starting from a Gaussian probe guess of FWHM "
            f"{fwhm * 1e9:.3g} nm")
    if not options.optimize_probe:
        text += "; add --optimize-probe (optimize_probe=true) to refine it, or add the probe to the file"
    return text


def check_dataset(dataset: DiffractionDataset, options: ReconstructionOptions) -> None:
    """Raise :class:`InputError` for data a reconstruction cannot use (NaN, bad shapes, positions outside)."""
    name = _name(dataset)
    data = np.asarray(dataset.intensities)
    if data.ndim != 3 or data.shape[0] < 1:
        raise InputError(f"{name}: intensities must be (n_pos, det_y, det_x), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{name}: the intensities contain {int(np.count_nonzero(~np.isfinite(data)))} NaN or Inf "
                         f"values; replace them (e.g. by 0) before reconstructing")
    if np.any(data < 0):
        raise InputError(f"{name}: the intensities contain negative values; clip them at 0")
    for key, value in (("energy_ev", dataset.energy_ev), ("pixel_size_m", dataset.pixel_size_m)):
        if value is None or not (math.isfinite(float(value)) and float(value) > 0):
            raise InputError(f"{name}: metadata {key} is missing or invalid ({value!r}); add it to the file")
    pos = np.asarray(dataset.positions_px)
    if pos.shape != (data.shape[0], 2):
        raise InputError(f"{name}: positions have shape {pos.shape}, expected ({data.shape[0]}, 2): one (y, x) "
                         f"per diffraction pattern")
    if dataset.probe is not None and tuple(np.shape(dataset.probe)) != data.shape[1:]:
        raise InputError(f"{name}: the probe is {tuple(np.shape(dataset.probe))} but the detector is "
                         f"{data.shape[1:]}; the probe must have the detector's shape")
    fwd = MultisliceForward(data.shape[1:], [0.0], 1.0, 1.0)
    try:
        fwd.check_positions(pos, resolve_object_shape(dataset, options))
    except PositionError as exc:
        raise InputError(f"{name}: {exc}") from None
