"""Multislice ptychography: physics, forward model, simulation, reconstruction and XRF seeding.

The data's journey: :mod:`.physics` (units) -> :mod:`.propagation` (free space) -> :mod:`.forward` (probe x slices ->
far field) -> :mod:`.simulate` (datasets with Poisson noise and XRF maps) -> :mod:`.reconstruct` (Adam, autodiff,
minibatches, checkpoints, MPI-ready) with :mod:`.xrf` (XRF-seeded starts). :mod:`.materials` and :mod:`.probe`
supply refractive indices and illuminations. Physics modules import no I/O; only ``simulate``/``reconstruct`` (and
the XRF seeding they drive) touch :mod:`ptycho_ddip.io`, lazily or for file entry points.
"""
from ._options import OptionsError
from .forward import MultisliceForward, PositionError
from .materials import refractive_index, transmission
from .physics import depth_of_field_m, energy_ev, fresnel_number, wavelength_m, wavenumber_per_m
from .probe import focused_probe, gaussian_probe, normalize_probe, supplied_probe
from .propagation import Propagator, far_field, far_field_adjoint, transfer_function

_LAZY = {
    "SimulationOptions": "simulate", "simulate": "simulate", "simulate_to_file": "simulate",
    "ReconstructionOptions": "reconstruct", "ReconstructionResult": "reconstruct", "Reconstructor": "reconstruct",
    "reconstruct": "reconstruct", "reconstruct_file": "reconstruct", "xrf_seed": "xrf",
}

__all__ = ["OptionsError", "MultisliceForward", "PositionError", "refractive_index", "transmission",
           "depth_of_field_m", "energy_ev", "fresnel_number", "wavelength_m", "wavenumber_per_m", "focused_probe",
           "gaussian_probe", "normalize_probe", "supplied_probe", "Propagator", "far_field", "far_field_adjoint",
           "transfer_function", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
