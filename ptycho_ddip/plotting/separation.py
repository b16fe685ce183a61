"""Figures of the DDIP separation: inputs, separated slices and truth with the loss and ground-truth trajectory
(:func:`separation_figure`, with the estimated mixing's ghost transfer functions), the filmstrip of slices along
the fit (:func:`snapshot_figure`), power spectra (:func:`power_spectrum_figure`), the edge-resolution fit
(:func:`erf_fit_figure`, the paper's Fig. 5) and the sweep and ensemble-uncertainty figures of
:mod:`ptycho_ddip.separation.sweep` (:func:`sweep_figure`, :func:`uncertainty_figure`, the paper's Figs 3, 4 and
6)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.colors import Normalize

from ._base import (_SMALL, _TITLE, _finish, _grid, _panel_inches, _range, _table, _with, add_colorbar, own_share,
                    part_label, plot_losses, plt, show_image, show_spectrum)

# ------------------------------------------------------------------------------------------------ separation

def separation_figure(inputs: np.ndarray, separated: np.ndarray, loss: np.ndarray, alpha: np.ndarray,
                      std: Optional[np.ndarray] = None, truth: Optional[np.ndarray] = None,
                      monitor: Optional[np.ndarray] = None, monitor_columns: Sequence[str] = (),
                      mixing: Optional[dict] = None, path: Optional[str] = None, *, part: Optional[str] = None,
                      label: Optional[str] = None, pixel_size_m: Optional[float] = None):
    """Inputs, outputs (with their own-signal shares), optional truth and std maps, loss curves, the ground-truth
    trajectory and, for the estimated mixing (``mixing``: ``Mixing.to_dict()``), its ghost transfer functions.

    ``part`` (the ``--part`` of complex input: "phase", "magnitude", ...) names the quantity in titles and colour
    bars (:func:`part_label`); ``label`` overrides the colour-bar label (e.g. "thickness (nm)"); ``pixel_size_m``
    (metres) adds scale bars and a 1/µm axis to the mixing panel."""
    n = inputs.shape[0]
    quantity, unit = part_label(part)
    unit = label or unit
    w = own_share(alpha)
    al = np.atleast_2d(alpha).mean(0)
    rows = [("input", inputs, lambda i: _with(quantity, f"input (contaminated): slice {i + 1}"))]
    rows.append(("separated", separated,
                 lambda i: _with(quantity, f"separated slice {i + 1}") + f"\nown share {w[i]:.3f}"
                 + (f", alpha_{i + 1} {al[i]:.3f}" if n == 2 else "")))
    if truth is not None:
        rows.append(("truth", truth, lambda i: _with(quantity, f"true slice {i + 1}")))
    if std is not None:
        rows.append(("std", std, lambda i: f"ensemble std: slice {i + 1}"))
    ncols = max(n, 2)
    pw, ph = _panel_inches(inputs.shape)
    plots = 1 + (monitor is not None) + (mixing is not None)
    fig, gs = _grid(len(rows), [pw] * ncols, ph, plots, title_lines=2)
    for r, (kind, stack, title) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(gs[r, i])
            if kind == "std":
                show_image(ax, stack[i], title(i), f"std of {unit}" if quantity else f"std ({unit})", pixel_size_m,
                           cmap="magma", norm=Normalize(0.0, max(float(np.max(stack[i])), 1e-30)))
            else:
                show_image(ax, stack[i], title(i), unit, pixel_size_m)
    r = len(rows)
    if mixing is not None:
        _mixing_panel(fig.add_subplot(gs[r, :]), mixing, pixel_size_m)
        r += 1
    ax = fig.add_subplot(gs[r, :])
    loss = _table(loss)
    plot_losses(ax, loss[:, 0], [(name, loss[:, c]) for c, name in
                                 zip(range(1, loss.shape[1]), ("total", "mismatch", "exclusion", "weight"))])
    ax.set_ylabel("loss (normalised images)", fontsize=8)
    ax.set_title("DDIP loss", fontsize=_TITLE)
    if monitor is not None:
        ax = fig.add_subplot(gs[r + 1, :])
        cols = list(monitor_columns)
        for j, name in enumerate(cols[1:], start=1):
            style = "-" if name.startswith("ghost") else ("--" if name.startswith("corr") else ":")
            ax.plot(monitor[:, 0], monitor[:, j], style, label=name)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("ratio / correlation / alpha", fontsize=8)
        ax.set_title("trajectory against ground truth", fontsize=_TITLE)
        ax.tick_params(which="both", labelsize=_SMALL)
        if len(cols) > 1:
            ax.legend(fontsize=_SMALL, ncol=3)
    return _finish(fig, path)


def _mixing_panel(ax, mixing: dict, pixel_size_m: Optional[float] = None) -> None:
    """Radial transfer functions H_ij(|k|) of an estimated mixing (separation.mixing.Mixing.to_dict())."""
    from ..separation.mixing import Mixing

    mix = Mixing.from_dict(mixing)
    k = np.linspace(0.0, 0.5, 200)
    prof = mix.profiles(k)
    n = prof.shape[0]
    for i in range(n):
        for j in range(n):
            if i != j:
                ax.plot(k, prof[i, j], label=f"ghost of slice {j + 1} on slice {i + 1} ({mix.ghost_kinds[i]})")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("spatial frequency |k| (cycles / pixel)", fontsize=8)
    ax.set_ylabel("H_ij(|k|)", fontsize=8)
    ax.set_title("estimated mixing: ghost transfer functions (own term = 1)", fontsize=_TITLE)
    ax.tick_params(which="both", labelsize=_SMALL)
    if pixel_size_m:
        scale = 1e-6 / pixel_size_m
        top = ax.secondary_xaxis("top", functions=(lambda f: f * scale, lambda f: f / scale))
        top.set_xlabel("|k| (1/µm)", fontsize=_SMALL)
        top.tick_params(which="both", labelsize=_SMALL)
    ax.legend(fontsize=_SMALL)


def snapshot_columns(n_snapshots: int, max_columns: int = 8) -> list:
    """Indices of at most ``max_columns`` snapshots, evenly spread, always with the first and the last."""
    if n_snapshots <= max_columns:
        return list(range(n_snapshots))
    return sorted({int(round(v)) for v in np.linspace(0, n_snapshots - 1, max_columns)})


def snapshot_figure(snapshots: np.ndarray, epochs: Sequence[int], max_columns: int = 8,
                    path: Optional[str] = None, *, part: Optional[str] = None, label: Optional[str] = None,
                    pixel_size_m: Optional[float] = None):
    """Filmstrip of the clean slices along the fit: one row per slice, one column per chosen epoch.

    Every panel of a row shares the display range of the row's last snapshot (mu +/- 4 sigma) and one colour bar,
    so a ghost that grows or fades along the fit is seen as a change of contrast, not hidden by per-panel scaling.
    ``part``, ``label``, ``pixel_size_m``: as in :func:`separation_figure`.
    """
    snaps = np.asarray(snapshots)
    cols = snapshot_columns(snaps.shape[0], max_columns)
    n = snaps.shape[1]
    quantity, unit = part_label(part)
    unit = label or unit
    pw, ph = _panel_inches(snaps.shape, base=1.9)
    fig, gs = _grid(n, [pw] * len(cols), ph, suptitle=True, shared_colorbar=True)
    for i in range(n):
        norm = Normalize(*_range(snaps[-1, i]))
        axes = []
        for c, t in enumerate(cols):
            ax = fig.add_subplot(gs[i, c])
            shown = show_image(ax, snaps[t, i], _with(quantity, f"slice {i + 1}") + f", epoch {int(epochs[t])}",
                               unit, pixel_size_m if c == 0 else None, norm=norm, colorbar=False, fontsize=8)
            axes.append(ax)
        add_colorbar(shown, axes, unit)
    fig.suptitle("separated slices along the fit (display range of the last epoch per row)", fontsize=_TITLE)
    return _finish(fig, path)


def power_spectrum_figure(images: Sequence[np.ndarray], titles: Sequence[str], exponent: float = 0.5,
                          path: Optional[str] = None, *, pixel_size_m: Optional[float] = None):
    """Normalised power spectra shown as (log10 P)^a, as in the paper's Fig. 4 (right column), with frequency
    axes (cycles/pixel, or 1/µm with ``pixel_size_m``) and colour bars."""
    fig, gs = _grid(1, [2.8] * len(images), 2.8)  # square: both axes span +/- 0.5 cycles/pixel
    for c, (im, t) in enumerate(zip(images, titles)):
        show_spectrum(fig.add_subplot(gs[0, c]), im, t, exponent, pixel_size_m=pixel_size_m)
    return _finish(fig, path)


def erf_fit_figure(fit, image: Optional[np.ndarray] = None, start: Optional[Sequence[float]] = None,
                   end: Optional[Sequence[float]] = None, path: Optional[str] = None, *,
                   label: str = "input units", pixel_size_m: Optional[float] = None):
    """Edge-resolution figure, as in the paper's Fig. 5: the image with the profile line (when ``image`` is given)
    and the line profile with its error-function fit, the edge's FWHM printed.

    Parameters
    ----------
    fit : an ``ErfFit`` from :func:`ptycho_ddip.separation.resolution.erf_resolution`.
    image : (H, W) image the profile was taken from (optional).
    start, end : (y, x) end points of the line in pixels, drawn on the image when both are given.
    path : PNG file to save the figure to (optional).
    label : quantity and unit of the image values (colour bar and profile axis), e.g. "phase (rad)".
    pixel_size_m : pixel size in metres: a scale bar on the image (the FWHM in nm comes from ``fit.fwhm_m``).

    Examples
    --------
    >>> from scipy import ndimage
    >>> from ptycho_ddip.separation.resolution import erf_resolution
    >>> im = ndimage.gaussian_filter(np.kron([[0.0, 1.0]], np.ones((32, 16))), 2.0)
    >>> fig = erf_fit_figure(erf_resolution(im, (16, 4), (16, 28)), im, (16, 4), (16, 28))
    >>> len(fig.axes)  # the image (its colour bar is an inset of it) and the profile
    2
    """
    if image is not None:
        pw, ph = _panel_inches(np.shape(image), base=2.8)
        fig, gs = _grid(1, [pw, 3.6], max(ph, 2.6))
        ax = fig.add_subplot(gs[0, 0])
        show_image(ax, np.asarray(image, dtype=np.float64), "image and profile line", label, pixel_size_m)
        if start is not None and end is not None:
            ax.plot([start[1], end[1]], [start[0], end[0]], "-", color="tab:orange", lw=1.5)
            ax.plot([start[1]], [start[0]], "o", color="tab:orange", ms=4)
        ax = fig.add_subplot(gs[0, 1])
    else:
        fig = plt.figure(figsize=(4.5, 3.4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
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
    ax.set_title(text, fontsize=_TITLE)
    ax.set_xlabel("distance along line (px)")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
    return _finish(fig, path)


# ------------------------------------------------------------------------------------------------ sweeps

def sweep_figure(inputs: np.ndarray, runs: Sequence, truth: Optional[np.ndarray] = None, exponent: float = 0.5,
                 path: Optional[str] = None, *, part: Optional[str] = None, label: Optional[str] = None,
                 pixel_size_m: Optional[float] = None):
    """The paper's Figs 3/4 layout: one row per slice with the input, every setting's output (own-signal shares in
    the title; display range mu +/- 4 sigma) and the truth; below, the normalised power spectra as (log10 P)^a.
    ``runs``: [(Setting, SeparationResult)] of :func:`ptycho_ddip.separation.sweep.run_sweep`; ``part``, ``label``,
    ``pixel_size_m``: as in :func:`separation_figure`."""
    n = inputs.shape[0]
    quantity, unit = part_label(part)
    unit = label or unit
    cols = [("input", inputs, None)] + [(s.label, r.separated, r.alpha) for s, r in runs]
    if truth is not None:
        cols.append(("truth", truth, None))
    pw, ph = _panel_inches(inputs.shape, base=1.9)
    spec_h = min(pw, 2.2) * 0.8  # spectra are square (both axes span +/- 0.5 cycles/pixel)
    fig, gs = _grid(2 * n, [pw] * len(cols), [ph] * n + [spec_h + 0.35] * n, title_lines=2)
    for c, (name, ims, alpha) in enumerate(cols):
        for i in range(n):
            title = f"{name}\n" + _with(quantity, f"slice {i + 1}")
            if alpha is not None:
                title += f", own share {own_share(alpha)[i]:.2f}"
            show_image(fig.add_subplot(gs[i, c]), ims[i], title, unit, pixel_size_m, fontsize=8)
            show_spectrum(fig.add_subplot(gs[n + i, c]), ims[i], f"{name}\nspectrum of slice {i + 1}", exponent,
                          fontsize=8, pixel_size_m=pixel_size_m)
    return _finish(fig, path)


def uncertainty_figure(runs: Sequence, path: Optional[str] = None, *, part: Optional[str] = None,
                       label: Optional[str] = None, pixel_size_m: Optional[float] = None):
    """The paper's Fig. 6: ensemble std maps per setting (one row per slice, one shared colour scale per row from
    0, so settings compare by eye) and the mean std against gamma. ``part``, ``label``, ``pixel_size_m``: as in
    :func:`separation_figure`."""
    runs = [(s, r) for s, r in runs if r.std is not None]
    if not runs:
        raise ValueError("uncertainty_figure needs ensemble runs (ensemble >= 2)")
    n = runs[0][1].std.shape[0]
    quantity, unit = part_label(part)
    unit = label or unit
    std_label = f"std of {unit}" if quantity else f"std ({unit})"
    pw, ph = _panel_inches(runs[0][1].std.shape, base=1.9)
    fig, gs = _grid(n, [pw] * len(runs) + [2.6], max(ph, 1.8), title_lines=2, shared_colorbar=True)
    for i in range(n):
        norm = Normalize(0.0, max(max(float(np.max(r.std[i])) for _, r in runs), 1e-30))
        axes = []
        for c, (s, r) in enumerate(runs):
            ax = fig.add_subplot(gs[i, c])
            title = f"ensemble std, {s.label}\n" + _with(quantity, f"slice {i + 1}")
            shown = show_image(ax, r.std[i], title, std_label, pixel_size_m if c == 0 else None, cmap="magma",
                               norm=norm, colorbar=False, fontsize=8)
            axes.append(ax)
        add_colorbar(shown, axes, std_label)
        ax = fig.add_subplot(gs[i, -1])
        for f in sorted({s.filters for s, _ in runs}):
            pts = [(s.gamma, float(np.mean(r.std[i]))) for s, r in runs if s.filters == f]
            ax.plot(*zip(*pts), "o-", label=f)
        if all(s.gamma > 0 for s, _ in runs):
            ax.set_xscale("log")
        ax.set_xlabel("gamma_excl", fontsize=8)
        ax.set_ylabel(f"mean {std_label}", fontsize=8)
        ax.set_title(f"slice {i + 1}: mean std against gamma", fontsize=8)
        ax.tick_params(which="both", labelsize=_SMALL)
        ax.legend(fontsize=_SMALL)
    return _finish(fig, path)
