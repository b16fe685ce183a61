"""PtyPy: a ``.ptyr`` reconstruction or the slices file of PtyPy's ThreePIE multislice engine read as a
:class:`~._object.PeerObject` (storages, pixel size, origin, view positions: :func:`read_ptypy`), and the seed: a
copy of the file with the object storage(s) replaced."""
from __future__ import annotations

import re

import h5py
import numpy as np

from ...atomic import InputError
from ..sources import _open_h5
from ._object import PeerObject, _complex, _copy_and_edit, _h5_array, _probe_amplitude

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
