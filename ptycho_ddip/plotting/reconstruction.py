"""Figures of the multislice reconstruction and of the pipeline: one reconstruction at a glance (object phase and
magnitude per slice, the probe, the data loss: :func:`reconstruction_figure`) and the pipeline's summary (every
slice after pass 1, after the DDIP and after pass 2, the truth, and the losses of the three fits:
:func:`summary_figure`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
from matplotlib.colors import Normalize

from ._base import _TITLE, _finish, _grid, _panel_inches, _table, _with, part_label, plot_losses, show_image

# ------------------------------------------------------------------------------------------------ reconstruction

def reconstruction_figure(obj: np.ndarray, loss: np.ndarray, name: str = "", path: Optional[str] = None, *,
                          probe: Optional[np.ndarray] = None, pixel_size_m: Optional[float] = None):
    """A reconstruction at a glance: phase (rad) and magnitude of every slice of the complex object ``obj``
    (n_slices, H, W), the probe's amplitude and phase (complex (h, w), when given), and the data loss per epoch.
    ``name`` (e.g. "pass1") prefixes the titles; ``pixel_size_m`` (metres) adds scale bars."""
    obj = np.asarray(obj)
    n = obj.shape[0]
    head = f"{name}: " if name else ""
    pw, ph = _panel_inches(obj.shape)
    widths = [pw] * n
    if probe is not None:
        probe = np.asarray(probe)
        widths.append(min(pw, ph * probe.shape[-1] / max(probe.shape[-2], 1)))
    fig, gs = _grid(2, widths, ph, 1)
    phase = np.angle(obj)
    for i in range(n):
        show_image(fig.add_subplot(gs[0, i]), phase[i], f"{head}slice {i + 1} phase", "phase (rad)", pixel_size_m)
        show_image(fig.add_subplot(gs[1, i]), np.abs(obj[i]), f"{head}slice {i + 1} magnitude",
                   "magnitude (dimensionless)", pixel_size_m)
    if probe is not None:
        amp = np.abs(probe)
        show_image(fig.add_subplot(gs[0, n]), amp, f"{head}probe amplitude", "amplitude (sqrt(counts))",
                   pixel_size_m, cmap="viridis", norm=Normalize(0.0, max(float(amp.max()), 1e-30)))
        ph_probe = np.where(amp > 0.05 * amp.max(), np.angle(probe), np.nan)
        show_image(fig.add_subplot(gs[1, n]), ph_probe, f"{head}probe phase\n(where amplitude > 5 % of max)",
                   "phase (rad)", pixel_size_m, cmap="twilight", norm=Normalize(-np.pi, np.pi))
    ax = fig.add_subplot(gs[2, :])
    loss = np.asarray(loss, dtype=np.float64)
    plot_losses(ax, np.arange(1, len(loss) + 1), [("data loss", loss)])
    ax.set_ylabel("data loss per position", fontsize=8)
    ax.set_title(f"{head}loss", fontsize=_TITLE)
    return _finish(fig, path)


def summary_figure(stages: dict, truth: Optional[np.ndarray], loss1: np.ndarray, loss2: np.ndarray,
                   sep_loss: np.ndarray, part: str = "phase", path: Optional[str] = None, *,
                   pixel_size_m: Optional[float] = None):
    """The pipeline's summary: the ``part`` of every slice after pass 1, after the DDIP and after pass 2 (``stages``
    with keys pass1, separation, pass2: (N, h, w) each), the truth when known, the reconstruction data loss of both
    passes and the DDIP loss. ``pixel_size_m`` (metres) adds scale bars."""
    quantity, unit = part_label(part)
    rows = [("after pass 1", stages["pass1"]), ("after DDIP", stages["separation"]),
            ("after pass 2", stages["pass2"])]
    if truth is not None:
        rows.append(("truth", truth))
    n = stages["pass1"].shape[0]
    ncols = max(n, 2)
    pw, ph = _panel_inches(stages["pass1"].shape)
    fig, gs = _grid(len(rows), [pw] * ncols, ph, 1)
    for r, (label, stack) in enumerate(rows):
        for i in range(n):
            show_image(fig.add_subplot(gs[r, i]), stack[i], f"{label}: " + _with(quantity, f"slice {i + 1}"), unit,
                       pixel_size_m)
    half = max(ncols // 2, 1)
    ax = fig.add_subplot(gs[len(rows), :half])
    loss1, loss2 = np.asarray(loss1, dtype=np.float64), np.asarray(loss2, dtype=np.float64)
    if len(loss1) or len(loss2):
        epochs = np.arange(1, len(loss1) + len(loss2) + 1)
        plot_losses(ax, epochs, [("pass 1", np.concatenate([loss1, np.full(len(loss2), np.nan)])),
                                 ("pass 2", np.concatenate([np.full(len(loss1), np.nan), loss2]))])
    else:
        plot_losses(ax, np.zeros(0), [])
    ax.set_xlabel("epoch (pass 2 after pass 1)", fontsize=8)
    ax.set_ylabel("data loss per position", fontsize=8)
    ax.set_title("reconstruction data loss", fontsize=_TITLE)
    ax = fig.add_subplot(gs[len(rows), half:])
    sep_loss = _table(sep_loss)
    plot_losses(ax, sep_loss[:, 0], [(label, sep_loss[:, c]) for c, label in
                                     ((1, "total"), (2, "mismatch"), (3, "exclusion")) if c < sep_loss.shape[1]])
    ax.set_ylabel("loss (normalised images)", fontsize=8)
    ax.set_title("DDIP loss", fontsize=_TITLE)
    return _finish(fig, path)
