"""Shared pieces of every figure: the Agg backend, font sizes, the atomic :func:`save_figure`, quantity and unit
labels (:func:`part_label`, :func:`own_share`), panel sizing and the figure grid, image panels with colour bars and
physical scale bars (:func:`show_image`, :func:`add_colorbar`, :func:`add_scale_bar`), power spectra with frequency
axes (:func:`show_spectrum`) and loss curves that do not hide one another (:func:`plot_losses`). The conventions
are those of :mod:`ptycho_ddip.plotting`."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from ..atomic import atomic_write  # noqa: E402

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
    from ..separation.metrics import power_spectrum

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
    if drawn:  # headroom above the curves for the legend (a steep start runs through the upper corners)
        vals = np.concatenate([d[1][np.isfinite(d[1]) & (d[1] > 0 if logy else True)] for d in drawn])
        if vals.size and np.ptp(vals) > 0:
            lo, hi = float(vals.min()), float(vals.max())
            if logy:
                ax.set_ylim(lo / 1.3, hi * (hi / lo) ** 0.45)
            else:
                ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.45 * (hi - lo))
    if drawn or zero:
        ax.legend(fontsize=fontsize, loc="upper right")
    if not drawn:
        ax.text(0.5, 0.5, "no epochs run" if not zero else "all zero", transform=ax.transAxes, ha="center",
                va="center", color="0.5")
        ax.set_yticks([])
    ax.tick_params(which="both", labelsize=_SMALL)
