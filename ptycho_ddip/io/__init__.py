"""File input and output for ptycho_ddip: HDF5, TIFF, NPY, JSON and TOML (a package; names load lazily).

This module knows nothing about the physics. It reads and validates user files with error messages that name the
offending file and say how to fix it (:class:`InputError`), and it writes every output atomically: the data go to a
temporary file in the target directory, which is renamed onto the target only once it is complete, so a crash never
leaves a partial file behind and an existing file is never replaced without ``overwrite=True``.

File layouts (see ``DESIGN.md`` section 4):

* diffraction dataset (Adorym-compatible): ``exchange/data`` and ``metadata/*``, see :func:`write_dataset`;
* reconstruction result: ``object``, ``probe``, ``positions``, ``loss`` plus phase/magnitude TIFFs, see
  :func:`write_reconstruction`;
* separation result: ``inputs``, ``separated``, ``alpha``, ``filters/*``, ``loss``, see
  :func:`write_separation_result`.

Units: lengths are metres in memory and centimetres in diffraction files (Adorym's convention); the exact SI value is
kept in an attribute ``value_m`` so that a write/read round trip is bit-exact.

Modules: :mod:`.sources` (inputs: NPY, TIFF, HDF5 datasets), :mod:`.dataset` (the dataset model, numpy only),
:mod:`.adorym` (the Adorym HDF5 layout of datasets), :mod:`.cxi` (CXI 1.6 / NXcxi_ptycho datasets), :mod:`.peers`
(PtyRAD, fold_slice, ptychodus, PtyPy and Adorym reconstructions in, seeds for them out), :mod:`.results`
(separation and reconstruction results),
:mod:`.tiff` (TIFF output), :mod:`.config` (JSON/TOML configs); the atomic writer is :mod:`ptycho_ddip.atomic`.
Importing ``ptycho_ddip.io.dataset`` does not import h5py or tifffile.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InputError": "ptycho_ddip.atomic",
    "check_output_path": "ptycho_ddip.atomic",
    "atomic_write": "ptycho_ddip.atomic",
    "atomic_group": "ptycho_ddip.atomic",
    "parse_source": "ptycho_ddip.io.sources",
    "read_images": "ptycho_ddip.io.sources",
    "read_tiff": "ptycho_ddip.io.sources",
    "write_tiff": "ptycho_ddip.io.tiff",
    "write_separation_result": "ptycho_ddip.io.results",
    "read_separation_result": "ptycho_ddip.io.results",
    "write_reconstruction": "ptycho_ddip.io.results",
    "read_reconstruction": "ptycho_ddip.io.results",
    "read_object_guess": "ptycho_ddip.io.results",
    "DiffractionDataset": "ptycho_ddip.io.dataset",
    "write_dataset": "ptycho_ddip.io.adorym",
    "read_dataset": "ptycho_ddip.io.adorym",
    "read_cxi": "ptycho_ddip.io.cxi",
    "write_cxi": "ptycho_ddip.io.cxi",
    "PeerObject": "ptycho_ddip.io.peers",
    "detect_peer": "ptycho_ddip.io.peers",
    "read_peer": "ptycho_ddip.io.peers",
    "write_seed": "ptycho_ddip.io.peers",
    "save_config_json": "ptycho_ddip.io.config",
    "load_config": "ptycho_ddip.io.config",
    "LOSS_COLUMNS": "ptycho_ddip.io._common",
    "HDF5_SUFFIXES": "ptycho_ddip.io._common",
    "TIFF_SUFFIXES": "ptycho_ddip.io._common",
    "PARTS": "ptycho_ddip.io._common",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ptycho_ddip.io' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(__all__)
