"""Tests of the resolution and spectral metrics (erf-fit edge width, streak energy, radial power) and of the
truth-free crosstalk estimate."""
import os

import numpy as np
import pytest
from scipy import ndimage

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.plotting import erf_fit_figure
from ptycho_ddip.separation.metrics import crosstalk_estimate, separation_metrics
from ptycho_ddip.separation.resolution import erf_resolution, radial_power, streak_angle, streak_energy

SIGMA = 2.3
FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0)) * SIGMA  # 5.416 px
CENTRE = np.array([64.0, 64.0])


def _normal(deg):
    t = np.deg2rad(deg)
    return np.array([np.sin(t), np.cos(t)])  # (y, x)


def _slanted_edge(normal_deg=30.0, noise=0.01, seed=0, shape=(128, 128)):
    """A step through CENTRE whose normal is at ``normal_deg`` to the x axis, blurred by a Gaussian of SIGMA px,
    plus seeded Gaussian noise (1 % of the step)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    n = _normal(normal_deg)
    step = ((yy - CENTRE[0]) * n[0] + (xx - CENTRE[1]) * n[1] > 0).astype(float)
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(step, SIGMA) + rng.normal(0.0, noise, shape)


def test_erf_rising_edge_recovers_width_and_metres():
    """A line along the normal of an edge slanted at 30 deg to the pixel grid: FWHM within 5 % of 2.3548 * 2.3."""
    im = _slanted_edge()
    n = _normal(30.0)
    fit = erf_resolution(im, CENTRE - 20 * n, CENTRE + 20 * n, pixel_size_m=5e-9)
    assert abs(fit.fwhm_px - FWHM) / FWHM < 0.05
    assert fit.fwhm_m == pytest.approx(fit.fwhm_px * 5e-9, rel=1e-12)
    assert fit.amplitude > 0.9 and abs(fit.center_px - 20.0) < 0.5
    assert fit.residual_rms < 0.02  # noise is 0.01
    assert fit.profile.shape == fit.distance_px.shape == fit.fitted.shape


def test_erf_falling_edge_and_averaged_lines():
    """The reversed line sees a falling edge: negative amplitude, same width; no pixel size -> fwhm_m is None.
    Averaging 5 parallel lines across the edge lowers the residual and keeps the width."""
    im = _slanted_edge(normal_deg=30.0, seed=1)
    n = _normal(30.0)
    fit = erf_resolution(im, CENTRE + 20 * n, CENTRE - 20 * n)
    assert fit.amplitude < -0.9
    assert abs(fit.fwhm_px - FWHM) / FWHM < 0.05
    assert fit.fwhm_m is None
    wide = erf_resolution(im, CENTRE + 20 * n, CENTRE - 20 * n, width_px=5, n_samples=81)
    assert abs(wide.fwhm_px - FWHM) / FWHM < 0.05
    assert wide.residual_rms < fit.residual_rms


def test_erf_oblique_line_measures_sigma_over_cos():
    """A line at 40 deg to the edge's normal crosses a longer ramp: FWHM / cos(40 deg), within 5 %."""
    im = _slanted_edge(normal_deg=30.0, seed=2)
    d = _normal(70.0)
    fit = erf_resolution(im, CENTRE - 25 * d, CENTRE + 25 * d)
    expected = FWHM / np.cos(np.deg2rad(40.0))
    assert abs(fit.fwhm_px - expected) / expected < 0.05


@pytest.mark.parametrize("angle", [0.0, 37.0, 121.0])
def test_streak_angle_of_a_grating(angle):
    """A cosine grating with wave vector at ``angle`` (atan2(f_y, f_x)) has its streak there, within 0.5 deg."""
    yy, xx = np.mgrid[:128, :128]
    n = _normal(angle)
    est = streak_angle(np.cos(2 * np.pi * (yy * n[0] + xx * n[1]) / 5.0))
    assert 0.0 <= est < 180.0
    assert abs((est - angle + 90.0) % 180.0 - 90.0) < 0.5


def test_streak_energy_of_a_grating_is_directional():
    yy, xx = np.mgrid[:128, :128]
    grating = np.cos(2 * np.pi * yy / 6.0)  # wave vector along f_y: 90 deg
    assert streak_energy(grating, 90.0) > 0.99
    assert streak_energy(grating, 0.0) < 1e-6
    assert streak_energy(grating) == pytest.approx(streak_energy(grating, 90.0))


def test_streak_energy_higher_with_zone_plate_ghost():
    """zp-nio, 128 x 128, seed 0, default blend (alpha_2 = 0.3, DoG ghost of the zone plate on slice 2).

    Measured (angle estimated from the contaminated slice 2, 52.1 deg, matching the zone plate's 52.0 deg):
    E(input slice 2) = 0.211, E(clean slice 2) = 0.0053 (ratio 40; 0.074 and 0.024 with ghost gain 0.5 and 0.25).
    Seeds 0-3 give ratios 40-86. The threshold 10 (rather than 1.5) still leaves a factor 4 of margin while
    failing if the wedge missed the streak (wedges at 180 - a, 90 - a and a + 90 give ratios 0.8, 8.6, 0.9)."""
    truth = make_phantom("zp-nio", (128, 128), seed=0).normalized()
    b = blend(truth)
    angle = streak_angle(b.inputs[1])
    assert abs((angle - streak_angle(b.truth[0]) + 90.0) % 180.0 - 90.0) < 1.0
    e_in, e_clean = streak_energy(b.inputs[1], angle), streak_energy(b.truth[1], angle)
    assert e_in > 10.0 * e_clean
    e_half = streak_energy(blend(truth, ghost_gain=(1.0, 0.5)).inputs[1], angle)
    assert e_clean < e_half < e_in  # the metric tracks partial suppression


def test_radial_power_peak_and_normalisation():
    xx = np.mgrid[:128, :128][1]
    freq, power, counts = radial_power(np.cos(2 * np.pi * xx / 8.0), return_counts=True)
    assert freq[np.argmax(power)] == pytest.approx(0.125)
    assert np.allclose(np.diff(freq), 1.0 / 128)
    assert (power * counts).sum() == pytest.approx(1.0)
    assert counts.sum() == 128 * 128
    rng = np.random.default_rng(3)
    f2, p2, c2 = radial_power(rng.random((96, 128)), n_bins=20, return_counts=True)
    assert f2.shape == p2.shape == (20,) and c2.sum() == 96 * 128
    assert (p2 * c2).sum() == pytest.approx(1.0)


def test_erf_fit_figure_writes_png(tmp_path):
    im = _slanted_edge(seed=4)
    n = _normal(30.0)
    start, end = CENTRE - 20 * n, CENTRE + 20 * n
    fit = erf_resolution(im, start, end, pixel_size_m=5e-9)
    path = str(tmp_path / "erf.png")
    fig = erf_fit_figure(fit, im, start, end, path=path)
    assert os.path.getsize(path) > 1000 and len(fig.axes) == 2
    assert "nm" in fig.axes[1].get_title()


@pytest.mark.parametrize("phantom", ["au-nio", "zp-nio"])
def test_crosstalk_estimate_ranks_leaks_like_the_ground_truth_ratio(phantom):
    """Outputs that keep a fraction t of the input's ghost, y = (1 - t) truth + t input: the truth-free estimate
    rises with t on every slice, as the ground-truth ghost-to-signal ratio does, and the contaminated inputs score
    at least twice the clean truth."""
    b = blend(make_phantom(phantom, (96, 96), seed=0).normalized())
    est, gsr = [], []
    for t in (0.0, 0.25, 0.5, 1.0):
        y = (1 - t) * b.truth + t * b.inputs
        est.append(crosstalk_estimate(y, b.inputs))
        gsr.append([m["ghost_to_signal"] for m in separation_metrics(y, b.truth, b.ghosts)])
    est, gsr = np.array(est), np.array(gsr)
    assert np.all(np.diff(gsr, axis=0) > 0)  # the premise
    assert np.all(np.diff(est, axis=0) > 0)
    assert np.all(est[-1] >= 2.0 * est[0])
    # swapping the ghost kinds swaps which bands are used, so the estimate changes
    swapped = crosstalk_estimate(b.inputs, b.inputs, ("highpass", "lowpass"))
    assert not np.allclose(swapped, est[-1])
    with pytest.raises(ValueError):
        crosstalk_estimate(b.inputs[:1], b.inputs)


@pytest.mark.parametrize("phantom", ["au-nio", "zp-nio"])
@pytest.mark.parametrize("filters,alpha", [(("gauss:2", "dog:0.7,3"), (0.7, 0.3)), (("gauss:4", "hp:1.5"), (0.6, 0.4)),
                                           (("box:11", "dog:1.5,6"), (0.8, 0.2))])
def test_partial_crosstalk_estimate_sees_a_small_ghost_above_its_bias(phantom, filters, alpha):
    """Slice 2 = truth + t x (its high-pass ghost, scaled to the truth's std): the partial estimate is near 0 for the
    clean truth (the plain one is biased by 0.09-0.28 here, the low-pass copy of slice 2 inside I_1), rises
    strictly with t, and a 5 % ghost reads at least 3 times the clean value, which the plain estimate does not
    reach (about 1.05-1.4 times)."""
    b = blend(make_phantom(phantom, (96, 96), seed=0).normalized(), alpha=alpha, filters=filters)
    ghost = b.ghosts[1] * b.truth[1].std() / b.ghosts[1].std()
    plain, part = [], []
    for t in (0.0, 0.02, 0.05, 0.1):
        y = b.truth.copy()
        y[1] = b.truth[1] + t * ghost
        plain.append(crosstalk_estimate(y, b.inputs)[1])
        part.append(crosstalk_estimate(y, b.inputs, partial=True)[1])
    assert part[0] <= 0.035 and part[0] <= 0.25 * plain[0]
    assert np.all(np.diff(part) > 0)
    assert part[2] >= 3.0 * part[0]
    assert plain[2] < 3.0 * plain[0]  # why the selection uses the partial form
    # slice 1 (low-pass ghost) has no nuisance regressors: partial and plain agree there
    assert crosstalk_estimate(b.inputs, b.inputs, partial=True)[0] == pytest.approx(
        crosstalk_estimate(b.inputs, b.inputs)[0], rel=1e-9)


def test_select_iterates_takes_the_least_contaminated_kept_image_that_passes_the_guard():
    """Slice 2 kept at three epochs: a heavily contaminated one, a cleaner one, and an even cleaner but underfitted
    (smoothed) one that the guard must refuse; slice 1 (low-pass ghost) is never replaced."""
    from ptycho_ddip.separation.select import select_iterates, selected_slices

    b = blend(make_phantom("au-nio", (96, 96), seed=0).normalized())
    final = 0.6 * b.truth + 0.4 * b.inputs  # both slices keep some ghost at the end
    dirty = 0.2 * b.truth[1] + 0.8 * b.inputs[1]
    cleaner = 0.9 * b.truth[1] + 0.1 * b.inputs[1]
    smooth = ndimage.gaussian_filter(b.truth[1], 8.0)  # no ghost, but little detail: correlates 0.80 with final
    kept = [(100, dirty[None]), (150, cleaner[None]), (200, smooth[None])]
    kinds = ("lowpass", "highpass")
    assert selected_slices(kinds) == [1] and selected_slices(("highpass", "highpass")) == [0, 1]
    out, epochs = select_iterates(kept, final, b.inputs, kinds, final_epoch=300, guard=0.9)
    assert list(epochs) == [300, 150]
    np.testing.assert_array_equal(out[0], final[0])
    np.testing.assert_allclose(out[1], cleaner)
    gsr = [m["ghost_to_signal"] for m in separation_metrics(out, b.truth, b.ghosts)]
    gsr_final = [m["ghost_to_signal"] for m in separation_metrics(final, b.truth, b.ghosts)]
    assert gsr[1] < 0.5 * gsr_final[1] and gsr[0] == pytest.approx(gsr_final[0])
    # without the guard the underfitted image would win; with nothing kept the final image stays
    assert list(select_iterates(kept, final, b.inputs, kinds, 300, guard=0.0)[1]) == [300, 200]
    assert list(select_iterates([], final, b.inputs, kinds, 300)[1]) == [300, 300]
    with pytest.raises(ValueError, match="estimate"):
        select_iterates(kept, final, b.inputs, kinds, 300, estimate="best")


def test_select_iterates_scores_candidates_by_each_estimate_and_by_their_rank_sum():
    """Eight kept images of slice 2: its truth blurred by up to 2 px plus up to 0.3 of its ghost. The plain
    estimate favours the blurred ones (less of the slice's own detail to correlate with the low-pass copy of it in
    I_1), the partial one does not, so they pick different images; each rule returns the candidate its own score
    (computed here independently) puts first, the rank rule the smallest sum of the two ranks (ties: partial)."""
    from scipy.stats import rankdata

    from ptycho_ddip.separation.metrics import crosstalk_nuisance, crosstalk_regressors, explained_ratio
    from ptycho_ddip.separation.select import select_iterates

    b = blend(make_phantom("zp-nio", (96, 96), seed=2).normalized())
    kinds = ("lowpass", "highpass")
    rng = np.random.default_rng(3)
    unit = lambda a: (a - a.mean()) / a.std()  # noqa: E731
    ghost = unit(b.ghosts[1])
    final = b.truth.copy()
    final[1] = unit(b.truth[1]) + 0.3 * ghost
    kept = [(100 * (k + 1), (unit(ndimage.gaussian_filter(b.truth[1], w)) + a * ghost)[None])
            for k, (a, w) in enumerate(zip(rng.uniform(0.0, 0.3, 8), rng.uniform(0.0, 2.0, 8)))]
    regs = crosstalk_regressors(1, final, b.inputs, kinds)
    cands = [(900, final[1])] + [(e, im[0]) for e, im in kept]
    part = np.array([explained_ratio(c, regs, crosstalk_nuisance(c, "highpass")) for _, c in cands])
    plain = np.array([explained_ratio(c, regs) for _, c in cands])
    rank = rankdata(part) + rankdata(plain)
    expected = {"partial": cands[int(np.argmin(part))][0], "plain": cands[int(np.argmin(plain))][0],
                "rank": cands[min(range(len(cands)), key=lambda q: (rank[q], part[q]))][0]}
    assert expected["partial"] != expected["plain"]  # the case where the rule matters
    for est, epoch in expected.items():
        out, epochs = select_iterates(kept, final, b.inputs, kinds, 900, guard=0.0, estimate=est)
        assert list(epochs) == [900, epoch]
        np.testing.assert_allclose(out[1], dict(cands)[epoch])
