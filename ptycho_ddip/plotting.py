"""Figures for scientists: slices before/after, loss curves, alphas, trajectories, spectra, uncertainty maps.

All functions use matplotlib's Agg backend (no screen needed), return the Figure, and save it atomically when given
a path (PNG). Display range of images is mu +/- 4 sigma per image, as in the paper's figures.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_write  # noqa: E402


def _range(im: np.ndarray, k: float = 4.0) -> tuple[float, float]:
    mu, sd = float(np.mean(im)), float(np.std(im))
    lo, hi = max(mu - k * sd, float(im.min())), min(mu + k * sd, float(im.max()))
    return (lo, hi) if hi > lo else (lo - 1e-12, lo + 1e-12)


def save_figure(fig, path: str) -> str:
    """Save a figure atomically (:func:`ptycho_ddip.atomic.atomic_write`, permissions follow the umask) and close
    it. An existing file at ``path`` is replaced: callers check their outputs before a computation starts."""
    try:
        with atomic_write(path, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def _show(ax, im, title):
    lo, hi = _range(im)
    ax.imshow(im, cmap="gray", vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def separation_figure(inputs: np.ndarray, separated: np.ndarray, loss: np.ndarray, alpha: np.ndarray,
                      std: Optional[np.ndarray] = None, truth: Optional[np.ndarray] = None,
                      monitor: Optional[np.ndarray] = None, monitor_columns: Sequence[str] = (),
                      mixing: Optional[dict] = None, path: Optional[str] = None):
    """Inputs, outputs (with alphas), optional truth and std maps, loss curves, the ground-truth trajectory and,
    for the estimated mixing (``mixing``: ``Mixing.to_dict()``), its ghost transfer functions."""
    n = inputs.shape[0]
    rows = [("input", inputs), ("separated", separated)]
    if truth is not None:
        rows.append(("truth", truth))
    if std is not None:
        rows.append(("ensemble std", std))
    ncols = max(n, 2)
    nrows = len(rows) + 1 + (monitor is not None) + (mixing is not None)
    fig = plt.figure(figsize=(3.0 * ncols, 2.8 * nrows))
    al = np.atleast_2d(alpha).mean(0)
    for r, (label, stack) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(nrows, ncols, r * ncols + i + 1)
            title = f"{label} {i + 1}"
            if label == "separated":
                title += f"  alpha={al[i]:.3f}"
            _show(ax, stack[i], title)
    if mixing is not None:
        _mixing_panel(fig.add_subplot(nrows, 1, len(rows) + 1), mixing)
        rows = rows + [("mixing", None)]
    ax = fig.add_subplot(nrows, 1, len(rows) + 1)
    ep = loss[:, 0]
    for c, name in zip(range(1, 5), ("total", "mismatch", "exclusion", "weight")):
        vals = loss[:, c]
        if np.any(vals > 0):
            ax.semilogy(ep, np.where(vals > 0, vals, np.nan), label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    if monitor is not None:
        ax = fig.add_subplot(nrows, 1, nrows)
        cols = list(monitor_columns)
        for j, name in enumerate(cols[1:], start=1):
            style = "-" if name.startswith("ghost") else ("--" if name.startswith("corr") else ":")
            ax.plot(monitor[:, 0], monitor[:, j], style, label=name)
        ax.set_xlabel("epoch")
        ax.set_title("trajectory against ground truth", fontsize=9)
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def _mixing_panel(ax, mixing: dict) -> None:
    """Radial transfer functions H_ij(|k|) of an estimated mixing (separation.mixing.Mixing.to_dict())."""
    from .separation.mixing import Mixing

    mix = Mixing.from_dict(mixing)
    k = np.linspace(0.0, 0.5, 200)
    prof = mix.profiles(k)
    n = prof.shape[0]
    for i in range(n):
        for j in range(n):
            if i != j:
                ax.plot(k, prof[i, j], label=f"ghost of slice {j + 1} on slice {i + 1} ({mix.ghost_kinds[i]})")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("spatial frequency |k| (cycles / pixel)")
    ax.set_ylabel("H_ij(|k|)")
    ax.set_title("estimated mixing: ghost transfer functions (own term = 1)", fontsize=9)
    ax.legend(fontsize=7)


def snapshot_columns(n_snapshots: int, max_columns: int = 8) -> list:
    """Indices of at most ``max_columns`` snapshots, evenly spread, always with the first and the last."""
    if n_snapshots <= max_columns:
        return list(range(n_snapshots))
    return sorted({int(round(v)) for v in np.linspace(0, n_snapshots - 1, max_columns)})


def snapshot_figure(snapshots: np.ndarray, epochs: Sequence[int], max_columns: int = 8,
                    path: Optional[str] = None):
    """Filmstrip of the clean slices along the fit: one row per slice, one column per chosen epoch.

    Every panel of a row shares the display range of the row's last snapshot (mu +/- 4 sigma), so a ghost that
    grows or fades along the fit is seen as a change of contrast, not hidden by per-panel scaling.
    """
    snaps = np.asarray(snapshots)
    cols = snapshot_columns(snaps.shape[0], max_columns)
    n = snaps.shape[1]
    fig, axes = plt.subplots(n, len(cols), figsize=(2.2 * len(cols), 2.6 * n), squeeze=False)
    for i in range(n):
        lo, hi = _range(snaps[-1, i])
        for c, t in enumerate(cols):
            ax = axes[i, c]
            ax.imshow(snaps[t, i], cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(f"slice {i + 1}, epoch {int(epochs[t])}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("separated slices along the fit (display range of the last epoch per row)", fontsize=9)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def show_spectrum(ax, image: np.ndarray, title: str, exponent: float = 0.5, fontsize: int = 9) -> None:
    """Draw the normalised power spectrum of ``image`` as (log10 P)^a (shifted to start at 0) on ``ax``."""
    from .separation.metrics import power_spectrum

    lp = np.log10(power_spectrum(image) + 1e-30)
    lp -= lp.min()
    ax.imshow(lp**exponent, cmap="inferno")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def power_spectrum_figure(images: Sequence[np.ndarray], titles: Sequence[str], exponent: float = 0.5,
                          path: Optional[str] = None):
    """Normalised power spectra shown as (log10 P)^a, as in the paper's Fig. 4 (right column)."""
    fig, axes = plt.subplots(1, len(images), figsize=(3 * len(images), 3), squeeze=False)
    for ax, im, t in zip(axes[0], images, titles):
        show_spectrum(ax, im, t, exponent)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def erf_fit_figure(fit, image: Optional[np.ndarray] = None, start: Optional[Sequence[float]] = None,
                   end: Optional[Sequence[float]] = None, path: Optional[str] = None):
    """Edge-resolution figure, as in the paper's Fig. 5: the image with the profile line (when ``image`` is given)
    and the line profile with its error-function fit, the edge's FWHM printed.

    Parameters
    ----------
    fit : an ``ErfFit`` from :func:`ptycho_ddip.separation.metrics.erf_resolution`.
    image : (H, W) image the profile was taken from (optional).
    start, end : (y, x) end points of the line in pixels, drawn on the image when both are given.
    path : PNG file to save the figure to (optional).

    Examples
    --------
    >>> from scipy import ndimage
    >>> from ptycho_ddip.separation.metrics import erf_resolution
    >>> im = ndimage.gaussian_filter(np.kron([[0.0, 1.0]], np.ones((32, 16))), 2.0)
    >>> fig = erf_fit_figure(erf_resolution(im, (16, 4), (16, 28)), im, (16, 4), (16, 28))
    >>> len(fig.axes)
    2
    """
    fig, axes = plt.subplots(1, 2 if image is not None else 1, figsize=(8.0 if image is not None else 4.5, 3.4),
                             squeeze=False)
    axes = axes[0]
    if image is not None:
        _show(axes[0], np.asarray(image, dtype=np.float64), "image")
        if start is not None and end is not None:
            axes[0].plot([start[1], end[1]], [start[0], end[0]], "-", color="tab:orange", lw=1.5)
            axes[0].plot([start[1]], [start[0]], "o", color="tab:orange", ms=4)
    ax = axes[-1]
    ax.plot(fit.distance_px, fit.profile, ".", color="0.3", label="profile")
    dense = np.linspace(fit.distance_px[0], fit.distance_px[-1], 400)
    from scipy.special import erf

    model = fit.offset + 0.5 * fit.amplitude * (1 + erf((dense - fit.center_px) / (np.sqrt(2) * fit.sigma_px)))
    ax.plot(dense, model, "-", color="tab:orange", label="erf fit")
    for x in (fit.center_px - fit.fwhm_px / 2, fit.center_px + fit.fwhm_px / 2):
        ax.axvline(x, color="tab:blue", ls=":", lw=1)
    text = f"FWHM = {fit.fwhm_px:.2f} px"
    if fit.fwhm_m is not None:
        text += f" = {fit.fwhm_m * 1e9:.1f} nm"
    ax.set_title(text, fontsize=9)
    ax.set_xlabel("distance along line (px)")
    ax.set_ylabel("value")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig
