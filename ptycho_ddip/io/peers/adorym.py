"""Adorym's object output: the TIFF pair ``obj_mag``/``obj_phase`` (or ``delta``/``beta``) ``_ds_N.tiff``, indexed
(y, x, z), recognised by name with its twin beside it (:func:`_adorym_pair`), read as a
:class:`~._object.PeerObject` (:func:`read_adorym`), and the seed: the same TIFF pair, which Adorym takes as
``initial_guess``. (Adorym's HDF5 *dataset* layout is :mod:`ptycho_ddip.io.adorym`.)"""
from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np

from ...atomic import InputError, atomic_group
from ..sources import _require_file, _tiff_to_zyx, read_tiff
from ._object import PeerObject

_ADORYM_NAME = re.compile(r"^(?P<pre>.*?)(?P<kind>obj_mag|obj_phase|delta|beta)"
                          r"(?P<post>(_ds_\d+|_\d+_\d+)?(_rank_\d+)?)\.tiff?$", re.IGNORECASE)
_ADORYM_TWIN = {"obj_mag": "obj_phase", "obj_phase": "obj_mag", "delta": "beta", "beta": "delta"}


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
