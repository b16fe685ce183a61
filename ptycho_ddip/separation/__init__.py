"""DDIP crosstalk separation: networks, model, losses, fitting engine, metrics. Arrays in, arrays out: it imports
neither ``multislice`` nor ``io`` nor ``plotting`` (files: :mod:`ptycho_ddip.separation_files`)."""
from .mixing import Mixing, estimate_mixing
from .options import SeparationOptions
from .separate import SeparationResult, separate

__all__ = ["Mixing", "SeparationOptions", "SeparationResult", "estimate_mixing", "separate"]
