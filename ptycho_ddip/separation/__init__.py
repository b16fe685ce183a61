"""DDIP crosstalk separation: networks, model, losses, fitting loop, metrics (does not import multislice)."""
from .mixing import Mixing, estimate_mixing
from .options import SeparationOptions
from .separate import SeparationResult, separate, separate_files

__all__ = ["Mixing", "SeparationOptions", "SeparationResult", "estimate_mixing", "separate", "separate_files"]
