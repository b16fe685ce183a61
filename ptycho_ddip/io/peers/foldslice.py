"""fold_slice / PtychoShelves: its reconstructions ``Niter*.mat`` (MATLAB v7.3, read with h5py) and
``*_recons.mat`` (v5/v6/v7, read with scipy) as a :class:`~._object.PeerObject` (:func:`read_foldslice`), with the
MATLAB axis order and fold_slice's position convention converted, and the seed fold_slice loads as its initial
object (a copy with ``object`` replaced, or a v5 MAT with ``object`` and ``p.dx_spec``)."""
from __future__ import annotations

from typing import Any, Optional

import h5py
import numpy as np

from ...atomic import InputError, atomic_write
from ..sources import _list_datasets, _open_h5, _require_file
from ._object import PeerObject, _complex, _copy_and_edit, _probe_amplitude

def _is_mat73(file: str) -> bool:
    with open(file, "rb") as fh:
        return fh.read(19) == b"MATLAB 7.3 MAT-file"


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
