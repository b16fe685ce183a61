"""PtyRAD: its model file ``model_iterNNNN.hdf5`` read as a :class:`~._object.PeerObject` (:func:`read_ptyrad`), and
the seed PtyRAD loads as its initial object (a copy of the model with ``obja``/``objp`` replaced, or a minimal model
file from another source)."""
from __future__ import annotations

import h5py
import numpy as np

from ...atomic import InputError, atomic_write
from ..sources import _open_h5
from ._object import PeerObject, _copy_and_edit, _h5_array, _h5_text, _probe_amplitude

ANGSTROM_M = 1e-10


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
