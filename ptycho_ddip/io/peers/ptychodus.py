"""ptychodus: its product files (HDF5 ``.h5``/``.hdf5`` or ``.npz``, what ptychodus hands to pty-chi) read as a
:class:`~._object.PeerObject` with the probe positions converted from metres about the object's centre
(:func:`read_ptychodus`), and the seed: a copy of the product with ``object`` replaced."""
from __future__ import annotations

import pathlib

import h5py
import numpy as np

from ...atomic import InputError, atomic_write
from ..sources import _open_h5, _require_file
from ._object import PeerObject, _complex, _copy_and_edit, _probe_amplitude

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
