"""ptycho_ddip: multislice ptychography and crosstalk separation with a modified double deep image prior.

Public API (imported lazily, so ``import ptycho_ddip`` is cheap)::

    simulate, reconstruct, separate, run_pipeline            # the four steps
    estimate_mixing, Mixing                                  # the crosstalk mixing alone (separation.mixing)
    SeparationOptions, SeparationResult, ReconstructionOptions, PipelineOptions
    make_phantom, blend                                      # synthetic ground truth
    read_images, read_dataset, write_dataset, read_separation_result, write_separation_result
"""
from ._version import __version__

_EXPORTS = {
    "separate": "ptycho_ddip.separation.separate",
    "separate_files": "ptycho_ddip.separation_files",
    "SeparationResult": "ptycho_ddip.separation.separate",
    "SeparationOptions": "ptycho_ddip.separation.options",
    "estimate_mixing": "ptycho_ddip.separation.mixing",
    "Mixing": "ptycho_ddip.separation.mixing",
    "make_phantom": "ptycho_ddip.phantoms",
    "blend": "ptycho_ddip.phantoms",
    "read_images": "ptycho_ddip.io",
    "read_dataset": "ptycho_ddip.io",
    "write_dataset": "ptycho_ddip.io",
    "read_separation_result": "ptycho_ddip.io",
    "write_separation_result": "ptycho_ddip.io",
    "read_reconstruction": "ptycho_ddip.io",
    "simulate": "ptycho_ddip.multislice.simulate",
    "reconstruct": "ptycho_ddip.multislice.reconstruct",
    "ReconstructionOptions": "ptycho_ddip.multislice.reconstruct",
    "run_pipeline": "ptycho_ddip.pipeline",
    "PipelineOptions": "ptycho_ddip.pipeline",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ptycho_ddip' has no attribute {name!r}")
