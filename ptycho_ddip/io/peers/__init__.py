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

Modules: :mod:`._object` (:class:`PeerObject` and the helpers the tools share), one module per tool with its reader
and seed writer (:mod:`.ptyrad`, :mod:`.foldslice`, :mod:`.ptychodus`, :mod:`.ptypy`, :mod:`.adorym`); this module
detects the format, dispatches to the readers, reads ptycho_ddip's own results, holds the hooks of the input
readers and the CLI, and writes the seeds.
"""
from __future__ import annotations

import os
import pathlib
from typing import Optional, Sequence

import h5py
import numpy as np

from ...atomic import InputError, atomic_write, check_output_path
from .._common import TIFF_SUFFIXES, _name
from ..sources import _open_h5, _require_file, parse_source
from ._object import PEERS, SEED_FORMATS, PeerObject, _complex, _probe_amplitude
from .adorym import _adorym_pair, _write_adorym, read_adorym
from .foldslice import _is_mat73, _write_foldslice, read_foldslice
from .ptychodus import _write_ptychodus, read_ptychodus
from .ptypy import _write_ptypy, read_ptypy
from .ptyrad import ANGSTROM_M, _write_ptyrad, read_ptyrad

__all__ = ["PEERS", "SEED_FORMATS", "ANGSTROM_M", "PeerObject", "detect_peer", "read_peer", "read_ptyrad",
           "read_foldslice", "read_ptychodus", "read_ptypy", "read_adorym", "read_ptycho_ddip", "READERS",
           "peer_images", "object_guess", "default_part", "describe", "seed_paths", "check_seed", "write_seed"]


# ----------------------------------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------------------------------

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
# Reading: ptycho_ddip's own results, and the dispatch to the readers of the tools
# ----------------------------------------------------------------------------------------------------------------------

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
    from ..cxi import describe_cxi, is_cxi

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
# Seeds: where they go, the checks before fitting, and the writer of each format
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
