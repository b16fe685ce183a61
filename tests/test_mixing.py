"""The estimated mixing (separation/mixing.py) and the DDIP with that mixing held fixed (separation/fixed.py)."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.fixed import FixedMixingDIP
from ptycho_ddip.separation.metrics import separation_metrics
from ptycho_ddip.separation.mixing import (DEFAULT_SIGMAS, Mixing, apply_mixing, estimate_mixing, ghost_terms,
                                           mirror_extend, unmix_tensor)
from ptycho_ddip.separation.options import SeparationOptions
from ptycho_ddip.separation.separate import normalize_jointly, separate


def _mixing(weights, sigmas=(2.0,), kinds=("lowpass", "highpass")):
    return Mixing(tuple(kinds), tuple(sigmas), np.asarray(weights, dtype=np.float64))


def test_mixing_is_a_reflect_boundary_gaussian_convolution():
    """One basis blur of 2 px: I_1 = Y_1 + 0.3 G_2 * Y_2 and I_2 = Y_2 + 0.5 (Y_1 - G_2 * Y_1), with G_2 the
    Gaussian of scipy.ndimage (mode "reflect", wide truncation), to 1e-9 of the image range."""
    rng = np.random.default_rng(0)
    y = rng.random((2, 40, 56))
    mix = _mixing([[[0.0], [0.3]], [[0.5], [0.0]]])
    out = apply_mixing(torch.as_tensor(y), mix.matrix(y.shape[-2:])).numpy()
    g = [ndimage.gaussian_filter(im, 2.0, mode="reflect", truncate=12.0) for im in y]
    np.testing.assert_allclose(out[0], y[0] + 0.3 * g[1], atol=1e-9)
    np.testing.assert_allclose(out[1], y[1] + 0.5 * (y[0] - g[0]), atol=1e-9)


def test_mirror_extension_is_half_sample_symmetric():
    x = torch.arange(6.0).reshape(2, 3)
    m = mirror_extend(x)
    assert m.shape == (4, 6)
    np.testing.assert_array_equal(m[0].numpy(), [0, 1, 2, 2, 1, 0])
    np.testing.assert_array_equal(m[:, 0].numpy(), [0, 3, 3, 0])


@pytest.mark.parametrize("n", [2, 3])
def test_unmixing_inverts_the_mixing_and_the_ghost_terms_sum_to_it(n):
    rng = np.random.default_rng(1)
    kinds = ("lowpass",) + ("highpass",) * (n - 1)
    w = rng.uniform(-0.3, 0.3, (n, n, len(DEFAULT_SIGMAS)))
    mix = Mixing(kinds, DEFAULT_SIGMAS, w)
    y = torch.as_tensor(rng.random((n, 32, 48)))
    m = mix.matrix((32, 48))
    x = apply_mixing(y, m)
    np.testing.assert_allclose(unmix_tensor(x, m).numpy(), y.numpy(), atol=1e-10)
    np.testing.assert_allclose(mix.unmix(x.numpy()), y.numpy(), atol=1e-10)
    np.testing.assert_allclose((y + ghost_terms(y, m).sum(dim=-3)).numpy(), x.numpy(), atol=1e-10)


def test_transfer_functions_keep_their_band():
    """Low-pass rows: non-negative and non-increasing in |k| whatever the signs of the weights; high-pass rows:
    zero at k = 0."""
    rng = np.random.default_rng(2)
    mix = Mixing(("lowpass", "highpass"), DEFAULT_SIGMAS, rng.normal(size=(2, 2, len(DEFAULT_SIGMAS))))
    k = np.linspace(0, 0.7, 200)
    p = mix.profiles(k)
    assert np.all(p[0, 1] >= 0) and np.all(np.diff(p[0, 1]) <= 1e-15)
    assert abs(p[1, 0, 0]) < 1e-15 and np.ptp(p[1, 0]) > 0.1
    np.testing.assert_allclose(p[0, 0], 1.0)


@pytest.mark.parametrize("phantom,filters,alpha", [
    ("au-nio", ("gauss:2", "dog:0.7,3"), (0.7, 0.3)),
    ("zp-nio", ("box:11", "dog:1.5,6"), (0.8, 0.2)),
])
def test_estimated_mixing_unmixes_a_synthetic_blend(phantom, filters, alpha):
    """Against the truth: the unmixed slices keep at most 30 % of the input's ghost-to-signal ratio, and slice 2
    (the strong scatterer's high-pass ghost) at most 5 %. Measured at 64 x 64, seed 0 (slice 1 / slice 2): au-nio
    0.024 / 0.007 of inputs 0.573 / 0.320; zp-nio 0.026 / 0.008 of 0.137 / 0.457; correlations >= 0.999."""
    b = blend(make_phantom(phantom, (64, 64), seed=0).normalized(), alpha=alpha, filters=filters)
    mix = estimate_mixing(b.inputs)
    assert mix.loss[-1] < mix.loss[0]
    y = mix.unmix(b.inputs)
    m_in = separation_metrics(b.inputs, b.truth, b.ghosts)
    m_out = separation_metrics(y, b.truth, b.ghosts)
    for i, frac in ((0, 0.3), (1, 0.05)):
        assert m_out[i]["ghost_to_signal"] <= frac * m_in[i]["ghost_to_signal"], (i, m_out, m_in)
        assert m_out[i]["correlation"] > max(0.98, m_in[i]["correlation"])


def test_estimate_mixing_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        estimate_mixing(np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="ghost_kinds"):
        estimate_mixing(np.random.default_rng(0).random((2, 32, 32)), ghost_kinds=("lowpass",), iters=1)
    with pytest.raises(ValueError, match="positive widths"):
        estimate_mixing(np.random.default_rng(0).random((2, 32, 32)), sigmas_px=(0.0, 1.0), iters=1)


def test_fixed_mixing_model_reproduces_the_target_from_the_unmixed_slices():
    """The model's synthesis of its own unmixed slices is the target (float32 rounding), its own-share weights lie
    in (0, 1), and the components sum to the synthesis."""
    b = blend(make_phantom("au-nio", (48, 48), seed=0).normalized())
    target, _ = normalize_jointly(b.inputs)
    mix = estimate_mixing(target, iters=100)
    model = FixedMixingDIP(target, mix, seeds=(0, 1))
    with torch.no_grad():
        out = model.unmixed_outputs()
        np.testing.assert_allclose(out["synth"][1].numpy(), target, atol=2e-5)
        assert torch.all((out["y"] > 0) & (out["y"] < 1))
        np.testing.assert_allclose(model.components(out).sum(dim=2).numpy(), out["synth"].numpy(), atol=1e-5)
        fwd = model()
    assert fwd["y"].shape == (2, 2, 48, 48) and torch.all((fwd["own"] > 0) & (fwd["own"] < 1))
    assert not torch.equal(fwd["y"][0], fwd["y"][1])  # two members, two seeds


def test_fit_data_terms_and_the_skipped_exclusion():
    """The data term of the estimated mixing's fit, sum_i mean((Y_i - (M^-1 x)_i)^2): it vanishes at the unmixed
    slices; off them it is the hand-computed sum. gamma_excl = 0 (the default here) records an exclusion of 0;
    gamma_excl = 0.5 a positive one."""
    from ptycho_ddip.separation.fit import member_losses

    b = blend(make_phantom("au-nio", (40, 40), seed=0).normalized())
    target, _ = normalize_jointly(b.inputs)
    mix = estimate_mixing(target, iters=50)
    model = FixedMixingDIP(target, mix).double()
    x = torch.as_tensor(target)[None]
    pairs = ([0], [1])
    with torch.no_grad():
        at_u = model.unmixed_outputs()
        off = model.outputs(at_u["y"] * 0.9 + 0.05)
        u = torch.as_tensor(mix.unmix(target))
        # the model keeps its target M^-1 x in float32: equal to the float64 unmix to float32 rounding
        assert torch.allclose(model.unmixed.double(), u, rtol=0, atol=1e-6 * float(u.abs().max()))
        u = model.unmixed.double()
        o = SeparationOptions()
        assert o.gamma_excl == 0.0
        mis0, exc0, _ = member_losses(model, at_u, x, o, 0, pairs)
        assert float(mis0[0]) < 1e-10 and float(exc0[0]) == 0.0
        mis, _, _ = member_losses(model, off, x, o, 0, pairs)
        want = (off["slices"][0] - u) ** 2
        assert float(mis[0]) == pytest.approx(float(want.mean(dim=(-2, -1)).sum()), rel=1e-9)
        assert float(mis[0]) > 1e-4
        o = SeparationOptions(gamma_excl=0.5)
        _, exc, _ = member_losses(model, off, x, o, 0, pairs)
        assert float(exc[0]) > 1e-3


def test_select_loss_keeps_each_slices_least_mismatch_iterate():
    """select="loss" (the estimated mixing's default): per member and slice, the network image whose slice is closest
    to its unmixed slice; a final iterate that is best is returned as it is."""
    from ptycho_ddip.separation.engine import BestIterate

    hook = BestIterate(torch.zeros(2, 4, 4), members=1)
    for epoch, (d1, d2) in enumerate([(3.0, 1.0), (1.0, 2.0), (2.0, 0.5)]):
        slices = torch.stack([torch.full((4, 4), d1), torch.full((4, 4), d2)])[None]
        hook.track({"slices": slices, "y": slices + 10.0}, epoch)
    best = hook.state
    assert best["epoch"].tolist() == [[1, 2]]
    np.testing.assert_allclose(best["y"][0, :, 0, 0].numpy(), [11.0, 10.5])
    np.testing.assert_allclose(best["val"].numpy(), [[1.0, 0.25]])
    b = blend(make_phantom("au-nio", (40, 40), seed=0).normalized())
    kw = dict(epochs=25, estimate={"iters": 50}, progress=False, threads=1, seed=1)
    loss, final = separate(b.inputs, **kw), separate(b.inputs, select="final", **kw)
    chosen = loss.config["selected_epochs"][0]
    assert loss.config["select"] == "loss" and all(0 <= e <= 25 for e in chosen)
    for i, e in enumerate(chosen):  # the same deterministic fit: slices taken at the end equal the final ones
        if e == 25:
            np.testing.assert_allclose(loss.separated[i], final.separated[i], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="select='loss' needs"):
        SeparationOptions(method="paper", select="loss")
    with pytest.raises(ValueError, match="select='loss' needs"):
        SeparationOptions(gamma_excl=0.5, select="loss")
    assert SeparationOptions(gamma_excl=0.5).select == "final"


def test_separate_with_zero_epochs_returns_the_unmixed_slices_and_the_mixing():
    b = blend(make_phantom("au-nio", (48, 48), seed=0).normalized())
    res = separate(b.inputs, epochs=0, estimate={"iters": 100}, progress=False)
    target, _ = normalize_jointly(b.inputs)
    mix = Mixing.from_dict(res.config["mixing_estimate"])
    y = mix.unmix(target)
    for i in range(2):  # separated = the unmixed slice mapped to the input's units (an affine map)
        assert np.corrcoef(res.separated[i].ravel(), y[i].ravel())[0, 1] > 1 - 1e-9
    assert res.loss.shape == (0, 5)
    assert set(res.filters) == {"f_1_2", "f_2_1", "sigmas_px"}
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        SeparationOptions(method="paper", epochs=0)


def test_ghost_estimate_is_the_estimated_ghost_and_ghost_removed_the_unmixed_input():
    """With epochs=0, inputs - ghost_estimate is the unmixed input slice M^-1 I (input units) up to a constant per
    slice (the unmixing of the normalisation's offset), to float32 rounding."""
    b = blend(make_phantom("zp-nio", (48, 48), seed=0).normalized(), alpha=(0.8, 0.2), filters=("box:11", "dog:1.5,6"))
    res = separate(b.inputs, epochs=0, estimate={"iters": 100}, progress=False)
    y = Mixing.from_dict(res.config["mixing_estimate"]).unmix(b.inputs)
    for i in range(2):
        diff = res.ghost_removed[i] - y[i]
        assert np.ptp(diff) < 1e-4 * np.ptp(b.inputs), (i, np.ptp(diff))


def test_three_slices_are_unmixed_with_a_known_mixing_recovered():
    """Three phantom slices (gold particles, NiO spheres, a zone plate) mixed by a known mixing of the model's basis
    (slice 1 receives low-pass ghosts, slices 2 and 3 high-pass ones): every unmixed slice correlates better with
    its truth than its input does, and at least 0.98."""
    au = make_phantom("au-nio", (64, 64), seed=0).normalized()
    zp = make_phantom("zp-nio", (64, 64), seed=0).normalized()
    truth = np.stack([au[0], au[1], zp[0]])
    w = np.zeros((3, 3, len(DEFAULT_SIGMAS)))
    w[0, 1, 3], w[0, 2, 4] = 0.3, 0.2           # low-pass ghosts (2 and 3 px blurs) on slice 1
    w[1, 0, 2], w[1, 2, 1] = 0.4, 0.3           # high-pass ghosts on slice 2
    w[2, 0, 2], w[2, 1, 5] = 0.3, -0.3          # and on slice 3 (a difference of Gaussians)
    kinds = ("lowpass", "highpass", "highpass")
    mixed = apply_mixing(torch.as_tensor(truth), Mixing(kinds, DEFAULT_SIGMAS, w).matrix((64, 64))).numpy()
    mix = estimate_mixing(mixed, ghost_kinds=kinds)
    y = mix.unmix(mixed)
    for i in range(3):
        c_in = np.corrcoef(mixed[i].ravel(), truth[i].ravel())[0, 1]
        c_out = np.corrcoef(y[i].ravel(), truth[i].ravel())[0, 1]
        assert c_out > c_in and c_out > 0.98, (i, c_in, c_out)
