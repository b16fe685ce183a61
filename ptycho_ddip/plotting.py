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
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from .atomic import atomic_write  # noqa: E402

__all__ = ["save_figure", "part_label", "show_image", "add_colorbar", "add_scale_bar", "show_spectrum",
           "plot_losses", "separation_figure", "snapshot_columns", "snapshot_figure", "power_spectrum_figure",
           "erf_fit_figure", "sweep_figure", "uncertainty_figure", "reconstruction_figure", "summary_figure"]

#: gid of the scale-bar artist (tests and users find it with ``[a for a in ax.artists if a.get_gid() == ...]``)
SCALE_BAR_GID = "scale bar"
_TITLE = 9  # font sizes
_SMALL = 7
_PLOT_H = 2.3  # height of a line-plot row (inches)


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


# ------------------------------------------------------------------------------------------------ labels, units

def part_label(part: Optional[str] = None) -> tuple[str, str]:
    """(quantity, colour-bar label) of images that are the ``part`` of a complex object, for titles and colour
    bars: ``"phase"`` -> ("phase", "phase (rad)"), ``"magnitude"`` -> ("magnitude", "magnitude (dimensionless)"),
    ``"imag"``/``"real"`` -> the imaginary/real part; None (real input of unknown units) -> ("", "input units")."""
    labels = {"phase": ("phase", "phase (rad)"), "magnitude": ("magnitude", "magnitude (dimensionless)"),
              "imag": ("imaginary part", "imaginary part (dimensionless)"),
              "real": ("real part", "real part (input units)")}
    return labels.get(part, ("", "input units")) if part else ("", "input units")


def _with(quantity: str, text: str) -> str:
    """``text`` followed by `` quantity`` when the quantity is known."""
    return f"{text} {quantity}" if quantity else text


def own_share(alpha: np.ndarray) -> np.ndarray:
    """Own-signal share w_i of each slice from the reported ``alpha`` (the paper's convention for N = 2, where
    alpha_2 weighs the ghost: w = (alpha_1, 1 - alpha_2); w = alpha for N > 2). Averaged over ensemble members."""
    al = np.atleast_2d(np.asarray(alpha, dtype=np.float64)).mean(0)
    return np.array([al[0], 1.0 - al[1]]) if al.size == 2 else al


# ------------------------------------------------------------------------------------------------ layout

def _panel_inches(shape: Sequence[int], base: float = 2.3, max_h: float = 3.4, min_h: float = 1.0,
                  max_w: float = 6.0) -> tuple[float, float]:
    """(width, height) in inches of an image panel of ``shape`` (H, W): ``base`` wide, its height from the aspect
    ratio, clipped to [min_h, max_h] (the width then follows the aspect, at most ``max_w``)."""
    h_px, w_px = (int(shape[-2]), int(shape[-1])) if len(shape) >= 2 else (1, 1)
    aspect = h_px / max(w_px, 1)
    w, h = base, base * aspect
    if h > max_h:
        h, w = max_h, max_h / aspect
    elif h < min_h:
        w = min(min_h / aspect, max_w)
        h = w * aspect
    return w, h


def _grid(n_image_rows: int, col_widths: Sequence[float], image_h, plot_rows: int = 0,
          plot_h: float = _PLOT_H, title_lines: int = 1, suptitle: bool = False, shared_colorbar: bool = False,
          min_w: float = 1.9):
    """A figure (constrained layout) and its GridSpec: ``n_image_rows`` rows of image panels ``image_h`` tall (plus
    room for titles and colour bars: one per panel, or one per row with ``shared_colorbar``; ``image_h`` may be a
    list, one height per row; columns at least ``min_w`` wide, for the titles), then ``plot_rows`` line-plot rows;
    the figure's size follows the panels."""
    cbar_w = 0.85  # colour bar, its ticks and label
    widths = [max(w, min_w) + (0.12 if shared_colorbar else cbar_w) for w in col_widths]
    image_hs = list(image_h) if isinstance(image_h, (list, tuple)) else [image_h] * n_image_rows
    heights = [h + 0.22 * title_lines + 0.08 for h in image_hs] + [plot_h] * plot_rows
    width = sum(widths) + (cbar_w if shared_colorbar else 0.0)
    fig = plt.figure(figsize=(max(width, 4.5), sum(heights) + (0.35 if suptitle else 0.0)), layout="constrained")
    gs = fig.add_gridspec(len(heights), len(widths), height_ratios=heights, width_ratios=widths)
    return fig, gs


def _table(loss) -> np.ndarray:
    """A separation loss table (n_epochs, columns: epoch, total, ...) as float64; (0, 5) when empty."""
    loss = np.asarray(loss, dtype=np.float64)
    return loss if loss.ndim == 2 and loss.shape[0] else np.zeros((0, 5))


def _finish(fig, path: Optional[str]):
    if path:
        save_figure(fig, path)
    return fig


# ------------------------------------------------------------------------------------------------ image panels

def _nice_length(max_m: float) -> float:
    """The largest 1, 2 or 5 x 10^k metres not above ``max_m``."""
    k = np.floor(np.log10(max_m))
    for m in (5.0, 2.0, 1.0):
        if m * 10**k <= max_m:
            return float(m * 10**k)
    return float(10**k)


def _format_length(m: float) -> str:
    for unit, scale in (("km", 1e3), ("m", 1.0), ("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9), ("pm", 1e-12)):
        if m >= scale * 0.999:
            return f"{m / scale:.3g} {unit}"
    return f"{m:.3g} m"


def add_scale_bar(ax, pixel_size_m: float, width_px: int, fraction: float = 0.25) -> None:
    """Draw a scale bar (a round length, at most ``fraction`` of the image width of ``width_px`` pixels of
    ``pixel_size_m`` metres) in the lower right corner of an image axes, white on a dark box."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_m = _nice_length(fraction * width_px * pixel_size_m)
    height_px = ax.get_ylim()
    thick = max(abs(height_px[0] - height_px[1]) * 0.015, 0.5)
    bar = AnchoredSizeBar(ax.transData, length_m / pixel_size_m, _format_length(length_m), "lower right",
                          pad=0.25, borderpad=0.3, sep=2, color="white", frameon=True, size_vertical=thick,
                          fontproperties={"size": _SMALL})
    bar.patch.set(facecolor="black", alpha=0.45, edgecolor="none")
    bar.set_gid(SCALE_BAR_GID)
    ax.add_artist(bar)


def add_colorbar(mappable, ax, label: str):
    """A colour bar for ``mappable`` beside ``ax`` (an axes or a list of axes), labelled ``label`` (quantity and
    unit)."""
    if isinstance(ax, (list, tuple, np.ndarray)):  # one bar for a row of panels
        axes = list(np.ravel(ax))
        cb = axes[0].figure.colorbar(mappable, ax=axes, fraction=0.08, pad=0.02, aspect=18)
    else:  # as tall as the image: an inset beside the (aspect-fitted) axes box
        cb = ax.figure.colorbar(mappable, cax=ax.inset_axes([1.03, 0.0, 0.05, 1.0]))
    cb.set_label(label, fontsize=_SMALL)
    cb.ax.tick_params(which="both", labelsize=_SMALL)
    return cb


def show_image(ax, im: np.ndarray, title: str, label: str = "input units", pixel_size_m: Optional[float] = None,
               cmap: str = "gray", norm: Optional[Normalize] = None, colorbar: bool = True,
               fontsize: int = _TITLE):
    """Show ``im`` (H, W) on ``ax``: display range mu +/- 4 sigma (or ``norm``), no ticks, ``title``, a colour bar
    labelled ``label`` (quantity and unit), and a scale bar when ``pixel_size_m`` (metres) is given. Returns the
    AxesImage."""
    im = np.asarray(im)
    if norm is None:
        lo, hi = _range(im)
        norm = Normalize(lo, hi)
    shown = ax.imshow(im, cmap=cmap, norm=norm)
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        add_colorbar(shown, ax, label)
    if pixel_size_m and np.isfinite(pixel_size_m) and pixel_size_m > 0:
        add_scale_bar(ax, pixel_size_m, im.shape[-1])
    return shown


def _show(ax, im, title, label: str = "input units", pixel_size_m: Optional[float] = None, **kwargs):
    """Backward-compatible name of :func:`show_image`."""
    return show_image(ax, im, title, label, pixel_size_m, **kwargs)


def _frequencies(n: int, pixel_size_m: Optional[float]) -> tuple[np.ndarray, str]:
    f = np.fft.fftshift(np.fft.fftfreq(n))
    if pixel_size_m:
        return f / pixel_size_m * 1e-6, "1/µm"
    return f, "cycles/pixel"


def show_spectrum(ax, image: np.ndarray, title: str, exponent: float = 0.5, fontsize: int = _TITLE,
                  pixel_size_m: Optional[float] = None, colorbar: bool = True) -> None:
    """Draw the normalised power spectrum P of ``image`` as (log10 P)^a (shifted to start at 0) on ``ax``, with
    frequency axes (cycles/pixel, or 1/µm when ``pixel_size_m`` is given) and a colour bar."""
    from .separation.metrics import power_spectrum

    lp = np.log10(power_spectrum(image) + 1e-30)
    lp -= lp.min()
    fy, unit = _frequencies(lp.shape[0], pixel_size_m)
    fx, _ = _frequencies(lp.shape[1], pixel_size_m)
    dy, dx = (fy[1] - fy[0]) if fy.size > 1 else 1.0, (fx[1] - fx[0]) if fx.size > 1 else 1.0
    shown = ax.imshow(lp**exponent, cmap="inferno",
                      extent=(fx[0] - dx / 2, fx[-1] + dx / 2, fy[-1] + dy / 2, fy[0] - dy / 2))
    ax.set_title(title, fontsize=fontsize)
    ax.set_xlabel(f"k_x ({unit})", fontsize=_SMALL)
    ax.set_ylabel(f"k_y ({unit})", fontsize=_SMALL)
    ax.tick_params(labelsize=6)
    ax.locator_params(nbins=3)
    if colorbar:
        add_colorbar(shown, ax, f"(log10 P)^{exponent:g}, shifted to 0")


def plot_losses(ax, epochs: np.ndarray, curves: Sequence[tuple], logy: bool = True, fontsize: int = 8) -> None:
    """Loss curves ``[(name, values), ...]`` against ``epochs`` on ``ax``, so that none hides another: curves with
    no positive value are not drawn (the legend says "name = 0"), identical curves are drawn once with a joint
    label ("total = mismatch"), and the others cycle through dash styles so that overlapping stretches stay
    visible."""
    epochs = np.asarray(epochs)
    drawn: list = []  # [label, values]
    zero: list = []
    for name, vals in curves:
        vals = np.asarray(vals, dtype=np.float64)
        if vals.size == 0:
            continue
        if not np.any(vals > 0 if logy else vals != 0):
            zero.append(name)
            continue
        same = next((d for d in drawn if d[1].shape == vals.shape and np.allclose(d[1], vals, rtol=1e-6, atol=0.0,
                                                                                   equal_nan=True)), None)
        if same is not None:
            same[0] += f" = {name}"
        else:
            drawn.append([name, vals])
    styles = [("-", 2.0), ("--", 1.6), ("-.", 1.4), (":", 1.8)]
    for k, (label, vals) in enumerate(drawn):
        ls, lw = styles[k % len(styles)]
        y = np.where(vals > 0, vals, np.nan) if logy else vals
        ax.plot(epochs, y, ls, lw=lw, label=label)
    if logy and drawn:
        ax.set_yscale("log")
    for name in zero:
        ax.plot([], [], " ", label=f"{name} = 0 (not drawn)")
    ax.set_xlabel("epoch", fontsize=fontsize)
    if drawn or zero:
        ax.legend(fontsize=fontsize)
    if not drawn:
        ax.text(0.5, 0.5, "no epochs run" if not zero else "all zero", transform=ax.transAxes, ha="center",
                va="center", color="0.5")
        ax.set_yticks([])
    ax.tick_params(which="both", labelsize=_SMALL)


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
    rows = [("input", inputs, lambda i: _with(quantity, f"input (blended): slice {i + 1}"))]
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
