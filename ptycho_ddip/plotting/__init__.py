"""Figures for scientists: slices before/after, loss curves, alphas, trajectories, spectra, uncertainty maps,
reconstructions (object and probe) and the pipeline's summary.

All functions use matplotlib's Agg backend (no screen needed), return the Figure, and save it atomically when given
a path (PNG). Conventions of every figure:

* every image panel has a colour bar labelled with the quantity and its unit: phase in rad, magnitude
  dimensionless, or "input units" where the unit is unknown (:func:`part_label`);
* a physical scale bar when the pixel size is known (``pixel_size_m``, metres, e.g. the dataset's
  ``DiffractionDataset.pixel_size_m``);
* titles name the slice and what is shown; spectra have frequency axes (cycles/pixel, or 1/µm with a pixel size);
* panels are sized from the image's aspect ratio (no blank bands for non-square images);
* loss curves that are zero are not drawn (the legend says so), identical curves share one line and label
  ("total = mismatch"), and overlapping curves are drawn in different dash styles.

Display range of images is mu +/- 4 sigma per image, as in the paper's figures; std maps run from 0.

Modules: :mod:`._base` (shared helpers: labels, layout, image panels, scale and colour bars, spectra, loss
curves, :func:`save_figure`), :mod:`.separation` (separation, snapshot, spectrum, edge-resolution, sweep and
uncertainty figures), :mod:`.reconstruction` (reconstruction and pipeline summary figures).
"""
from __future__ import annotations

from . import _base  # first: matplotlib.use("Agg") runs there before pyplot is imported
from ._base import (add_colorbar, add_scale_bar, part_label, plot_losses, save_figure, show_image,
                    show_spectrum)
from .reconstruction import reconstruction_figure, summary_figure
from .separation import (erf_fit_figure, power_spectrum_figure, separation_figure, snapshot_columns, snapshot_figure,
                         sweep_figure, uncertainty_figure)

# names outside __all__ that callers and tests use (``plotting.plt``, ``plotting.SCALE_BAR_GID``, ...)
SCALE_BAR_GID, own_share, plt = _base.SCALE_BAR_GID, _base.own_share, _base.plt
_show, _nice_length, _format_length = _base._show, _base._nice_length, _base._format_length

__all__ = ["save_figure", "part_label", "show_image", "add_colorbar", "add_scale_bar", "show_spectrum",
           "plot_losses", "separation_figure", "snapshot_columns", "snapshot_figure", "power_spectrum_figure",
           "erf_fit_figure", "sweep_figure", "uncertainty_figure", "reconstruction_figure", "summary_figure"]
