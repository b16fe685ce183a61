"""DDIP crosstalk separation: networks, model, losses, fitting loop, metrics (does not import multislice)."""
from .options import SeparationOptions
from .separate import SeparationResult, separate, separate_files

__all__ = ["SeparationOptions", "SeparationResult", "separate", "separate_files"]
