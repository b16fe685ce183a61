"""The output of a multislice reconstruction: :class:`ReconstructionResult` (object, probe, positions, loss, slice
positions, options and provenance) and its mapping for :func:`ptycho_ddip.io.write_reconstruction`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._version import __version__


@dataclass
class ReconstructionResult:
    """Output of :func:`reconstruct`.

    Attributes
    ----------
    object : complex (n_slices, H, W) transmission per slice.
    probe : complex (h, w).
    positions : (n, 2) float64 scan positions used (y, x) top-left, pixels.
    loss : (epochs,) mean loss per position of each epoch.
    slice_pos_m : (n_slices,) slice positions (m).
    config : the options as a dict (JSON-ready).
    seed, n_ranks : provenance.
    extra : further arrays (e.g. the XRF seed) written as root datasets.
    """

    object: np.ndarray
    probe: np.ndarray
    positions: np.ndarray
    loss: np.ndarray
    slice_pos_m: np.ndarray
    config: dict
    seed: int = 0
    n_ranks: int = 1
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The mapping :func:`ptycho_ddip.io.write_reconstruction` expects."""
        extra = {"slice_pos_m": np.asarray(self.slice_pos_m)}
        extra.update(self.extra)
        return {"object": self.object, "probe": self.probe, "positions": self.positions, "loss": self.loss,
                "extra": extra, "config": self.config, "version": __version__, "seed": self.seed,
                "n_ranks": self.n_ranks}
