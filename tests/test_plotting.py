"""Every figure on tiny arrays: colour bars with units on every image, titles that name the slice, scale bars with a
pixel size, frequency axes on spectra, loss legends that hide no curve, panel sizes from the image aspect."""
from types import SimpleNamespace

import numpy as np
import pytest

from ptycho_ddip import plotting as P
from ptycho_ddip.separation.sweep import Setting

SHAPE = (32, 48)  # non-square on purpose
PX = 10e-9


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    P.plt.close("all")


def _stack(n=2, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + shape)


def _loss(epochs=20, gamma0=False):
    ep = np.arange(1, epochs + 1, dtype=float)
    mis = np.exp(-ep / 10)
    excl = np.zeros_like(ep) if gamma0 else 0.1 * np.exp(-ep / 30)
    weight = np.zeros_like(ep) if gamma0 else np.where(ep < 10, 0.01, 0.0)
    return np.stack([ep, mis + excl + weight, mis, excl, weight], 1)


def _colorbars(fig):
    return [im.colorbar for ax in fig.axes for im in ax.images if im.colorbar is not None]


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _check_images(fig, names=("slice",)):
    """Every image axis: a colour bar (its own, or a row's bar on the same norm) with a label; a title naming the
    slice (or one of ``names``)."""
    bars = _colorbars(fig)
    axes = _image_axes(fig)
    assert axes
    for ax in axes:
        im = ax.images[0]
        cb = im.colorbar or next((c for c in bars if c.mappable.norm is im.norm), None)
        assert cb is not None, f"no colour bar for {ax.get_title()!r}"
        assert (cb.ax.get_ylabel() or cb.ax.get_xlabel()).strip(), f"unlabelled colour bar for {ax.get_title()!r}"
        title = ax.get_title()
        assert title.strip() and any(name in title for name in names), title
    return axes


def _scale_bars(fig):
    return [a for ax in fig.axes for a in ax.artists if a.get_gid() == P.SCALE_BAR_GID]


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


@pytest.mark.filterwarnings("ignore:the estimated mixing removes little")
@pytest.mark.parametrize("px", [None, PX])
def test_separation_figure_units_titles_scale_bar_and_gamma0_legend(px):
    from ptycho_ddip.separation.mixing import estimate_mixing
    from ptycho_ddip.separation.separate import monitor_columns

    x = _stack()
    mon = np.column_stack([np.arange(3.0)] + [np.full(3, 0.5)] * (len(monitor_columns(2)) - 1))
    fig = P.separation_figure(x, x, _loss(gamma0=True), np.array([[0.9, 0.1], [0.8, 0.2]]), std=np.abs(x),
                              truth=x, monitor=mon, monitor_columns=monitor_columns(2),
                              mixing=estimate_mixing(x, iters=3).to_dict(), part="phase", pixel_size_m=px)
    axes = _check_images(fig)
    assert len(axes) == 8
    labels = {c.ax.get_ylabel() for c in _colorbars(fig)}
    assert "phase (rad)" in labels and "std of phase (rad)" in labels
    assert any("separated slice 2" in ax.get_title() for ax in axes)
    assert bool(_scale_bars(fig)) == (px is not None)
    texts = _legend_texts(fig)
    assert "total = mismatch" in texts and "mismatch" not in texts  # one line, labelled for both
    assert "exclusion = 0 (not drawn)" in texts


def test_separation_figure_real_input_says_input_units_and_loss_curves_do_not_hide():
    x = _stack()
    fig = P.separation_figure(x, x, _loss(), np.array([0.7, 0.3]))
    _check_images(fig)
    assert {c.ax.get_ylabel() for c in _colorbars(fig)} == {"input units"}
    assert not _scale_bars(fig)
    loss_ax = next(ax for ax in fig.axes if ax.get_title() == "DDIP loss")
    styles = [line.get_linestyle() for line in loss_ax.get_lines() if line.get_label() in
              ("total", "mismatch", "exclusion", "weight")]
    assert len(styles) == 4 and len(set(styles)) == 4  # overlapping stretches stay visible


def test_separation_figure_without_epochs_has_no_legend_warning(recwarn):
    x = _stack()
    P.separation_figure(x, x, np.zeros((0, 5)), np.array([0.7, 0.3]))
    assert not [w for w in recwarn if "legend" in str(w.message).lower()]


def test_figure_height_follows_the_image_aspect():
    wide, square = _stack(shape=(32, 128)), _stack(shape=(128, 128))
    h_wide = P.separation_figure(wide, wide, _loss(), np.array([0.7, 0.3])).get_figheight()
    h_square = P.separation_figure(square, square, _loss(), np.array([0.7, 0.3])).get_figheight()
    assert h_wide < 0.75 * h_square


@pytest.mark.parametrize("px", [None, PX])
def test_snapshot_figure_one_bar_per_row(px):
    snaps = np.stack([_stack(seed=s) for s in range(5)])
    fig = P.snapshot_figure(snaps, np.arange(0, 50, 10), part="magnitude", pixel_size_m=px)
    _check_images(fig)
    assert len(_colorbars(fig)) == 2
    assert {c.ax.get_ylabel() for c in _colorbars(fig)} == {"magnitude (dimensionless)"}
    assert bool(_scale_bars(fig)) == (px is not None)


def _runs(std=True):
    x = _stack()
    return [(Setting("kernel", g), SimpleNamespace(separated=x * g, alpha=np.array([0.7, 0.3]),
                                                   std=np.abs(x) * g if std else None)) for g in (0.1, 0.4)]


@pytest.mark.parametrize("px", [None, PX])
def test_sweep_figure_spectra_have_frequency_axes(px):
    x = _stack()
    fig = P.sweep_figure(x, _runs(), truth=x, part="phase", pixel_size_m=px)
    _check_images(fig)
    spectra = [ax for ax in _image_axes(fig) if "spectrum" in ax.get_title()]
    assert len(spectra) == 2 * 4
    unit = "1/µm" if px else "cycles/pixel"
    assert all(unit in ax.get_xlabel() and unit in ax.get_ylabel() for ax in spectra)
    assert bool(_scale_bars(fig)) == (px is not None)


@pytest.mark.parametrize("px", [None, PX])
def test_uncertainty_figure_std_maps_share_a_scale_per_row(px):
    fig = P.uncertainty_figure(_runs(), part="phase", pixel_size_m=px)
    axes = _check_images(fig)
    assert len(axes) == 4
    assert {c.ax.get_ylabel() for c in _colorbars(fig)} == {"std of phase (rad)"}
    assert bool(_scale_bars(fig)) == (px is not None)
    with pytest.raises(ValueError):
        P.uncertainty_figure(_runs(std=False))


@pytest.mark.parametrize("px", [None, PX])
def test_reconstruction_figure_shows_object_probe_and_loss(px, tmp_path):
    rng = np.random.default_rng(1)
    obj = np.exp(1j * rng.standard_normal((2,) + SHAPE)) * 0.9
    probe = np.exp(-np.add.outer(np.arange(-8, 8) ** 2, np.arange(-8, 8) ** 2) / 20.0) * np.exp(0.3j)
    path = str(tmp_path / "rec.png")
    fig = P.reconstruction_figure(obj, np.linspace(10, 1, 15), "pass1", path, probe=probe, pixel_size_m=px)
    axes = _check_images(fig, names=("slice", "probe"))
    titles = [ax.get_title() for ax in axes]
    assert "pass1: slice 1 phase" in titles and "pass1: slice 2 magnitude" in titles
    assert "pass1: probe amplitude" in titles and any(t.startswith("pass1: probe phase") for t in titles)
    labels = {c.ax.get_ylabel() for c in _colorbars(fig)}
    assert {"phase (rad)", "magnitude (dimensionless)"} <= labels
    assert bool(_scale_bars(fig)) == (px is not None)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_reconstruction_figure_old_call_without_probe():
    fig = P.reconstruction_figure(np.ones((2,) + SHAPE, complex), np.zeros(0), "pass2")
    _check_images(fig)


@pytest.mark.parametrize("px", [None, PX])
def test_summary_figure(px):
    x = _stack()
    stages = {"pass1": x, "separation": x, "pass2": x}
    fig = P.summary_figure(stages, x, np.linspace(5, 1, 10), np.linspace(1, 0.5, 10), _loss(gamma0=True),
                           "phase", pixel_size_m=px)
    axes = _check_images(fig)
    assert len(axes) == 8 and "after DDIP: slice 2 phase" in [ax.get_title() for ax in axes]
    assert "total = mismatch" in _legend_texts(fig)
    assert bool(_scale_bars(fig)) == (px is not None)


def test_power_spectrum_and_erf_figures():
    from scipy import ndimage

    from ptycho_ddip.separation.resolution import erf_resolution

    x = _stack()
    fig = P.power_spectrum_figure(list(x), ["spectrum of slice 1", "spectrum of slice 2"], pixel_size_m=PX)
    _check_images(fig)
    assert all("1/µm" in ax.get_xlabel() for ax in _image_axes(fig))
    im = ndimage.gaussian_filter(np.kron([[0.0, 1.0]], np.ones((32, 16))), 2.0)
    fig = P.erf_fit_figure(erf_resolution(im, (16, 4), (16, 28)), im, (16, 4), (16, 28), label="phase (rad)",
                           pixel_size_m=PX)
    _check_images(fig, names=("image",))
    assert _scale_bars(fig)


def test_part_labels_and_scale_bar_lengths():
    assert P.part_label("phase") == ("phase", "phase (rad)")
    assert P.part_label(None)[1] == "input units"
    assert P._nice_length(0.26e-6) == pytest.approx(0.2e-6)
    assert P._nice_length(7e-9) == pytest.approx(5e-9)
    assert P._format_length(2e-7) == "200 nm" and P._format_length(5e-6) == "5 µm"
    assert np.allclose(P.own_share([0.9, 0.2]), [0.9, 0.8])
