"""DDIP engine: networks, losses, model equations, determinism, resume, ensembles, N = 3, quality on a blend."""
import numpy as np
import pytest
import torch

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.losses import exclusion_loss, exclusion_pairs, mismatch, weight_regularizer
from ptycho_ddip.separation.metrics import (correlation, crosstalk_nuisance, crosstalk_regressors, explained_ratio,
                                          ghost_to_signal, separation_metrics)
from ptycho_ddip.separation.model import DDIPModel
from ptycho_ddip.separation.networks import (FFT_MIN_KERNEL, KernelFilter, ShallowDIPFilter, SkipDIP, correlate_kernels,
                                            gaussian_blur)
from ptycho_ddip.separation.options import SeparationOptions
from ptycho_ddip.separation.separate import Fit, input_anchor_pairs, separate

from conftest import TEST_DEVICE, assert_same_fit


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    np.random.seed(1234)


def _small_blend(n=48, seed=0):
    return blend(make_phantom("au-nio", (n, n), seed=seed).normalized())


@pytest.mark.parametrize("shape", [(100, 130), (33, 47), (64, 64)])
def test_skip_dip_output_size_equals_input_size(shape):
    net = SkipDIP(1, 1)
    with torch.no_grad():
        out = net(torch.rand(1, 1, *shape))
    assert tuple(out.shape) == (1, 1, *shape)
    assert float(out.min()) > 0 and float(out.max()) < 1  # sigmoid output
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(1.5e6, rel=0.05)


@pytest.mark.parametrize("filt", [KernelFilter("lowpass"), KernelFilter("highpass"), ShallowDIPFilter("highpass")])
def test_filters_keep_size(filt):
    y = torch.rand(1, 1, 37, 53)
    assert tuple(filt(y).shape) == (1, 1, 37, 53)


def test_initial_kernels_are_lowpass_and_highpass():
    y = torch.ones(1, 1, 20, 20)
    assert torch.allclose(KernelFilter("lowpass")(y), y, atol=1e-6)  # averaging keeps a constant
    with torch.no_grad():
        assert float(KernelFilter("highpass")(y).abs().max()) < 1e-6  # Laplacian kills it


def test_shallow_dip_filter_can_be_negative_without_sigmoid():
    torch.manual_seed(0)
    y = torch.rand(1, 1, 40, 40)
    assert float(ShallowDIPFilter("highpass")(y).detach().min()) < 0
    assert float(ShallowDIPFilter("lowpass", sigmoid=True)(y).detach().min()) >= 0


@pytest.mark.parametrize("sigma,shape", [(1.5, (40, 52)), (0.7, (9, 12)), (4.0, (10, 30))])
def test_gaussian_blur_equals_scipy_mirror_filter(sigma, shape):
    """networks.gaussian_blur is scipy's gaussian_filter(mode="mirror", truncate=3) whenever the 3-sigma support
    fits the image; on a constant it is exact (normalised kernel), and it keeps the mean of a periodic pattern."""
    from scipy.ndimage import gaussian_filter

    x = np.random.default_rng(0).random((2, *shape))
    out = gaussian_blur(torch.from_numpy(x)[None], sigma)[0].numpy()
    if 3 * sigma < min(shape) - 1:
        for c in range(2):
            np.testing.assert_allclose(out[c], gaussian_filter(x[c], sigma, mode="mirror", truncate=3.0), atol=1e-12)
    const = gaussian_blur(torch.full((1, 1, *shape), 0.3, dtype=torch.float64), sigma)
    np.testing.assert_allclose(const.numpy(), 0.3, atol=1e-14)
    # a cosine of period 8 px in the interior is damped by the Gaussian's transfer exp(-2 pi^2 sigma^2 f^2)
    if shape == (40, 52):
        cos = np.cos(2 * np.pi * np.arange(52) / 8.0)[None].repeat(40, 0)
        damped = gaussian_blur(torch.from_numpy(cos)[None, None], sigma)[0, 0].numpy()
        gain = np.exp(-2 * np.pi**2 * sigma**2 / 64.0)
        np.testing.assert_allclose(damped[:, 8:-8], gain * cos[:, 8:-8], atol=2e-3)


def test_shallow_dip_lowpass_filter_blur_and_its_default():
    """filter_blur puts a fixed Gaussian after the low-pass shallow-DIP filter only; off by default (the paper's
    filter) in both schedules."""
    y = torch.rand(1, 1, 40, 44, dtype=torch.float64)
    lp, hp = ShallowDIPFilter("lowpass", blur=1.5).double(), ShallowDIPFilter("highpass", blur=1.5).double()
    with torch.no_grad():
        np.testing.assert_allclose(lp(y).numpy(), gaussian_blur(lp.net(y), 1.5).numpy(), atol=1e-14)
        np.testing.assert_allclose(hp(y).numpy(), (y - hp.net(y)).numpy(), atol=1e-14)  # high-pass: no blur
    assert SeparationOptions(filters="dip").filter_blur == 0.0
    assert SeparationOptions(filters="dip", schedule="paper").filter_blur == 0.0
    with pytest.raises(ValueError, match="filter_blur"):
        SeparationOptions(filters="dip", filter_blur=-1.0)
    # the model's low-pass ghost f_12(y_2) is the blurred network output; the high-pass ghost f_21(y_1) is not
    m = DDIPModel(2, (40, 44), filters="dip", filter_blur=1.5, seed=2).double()
    m0 = DDIPModel(2, (40, 44), filters="dip", filter_blur=0.0, seed=2).double()
    with torch.no_grad():
        yy = m.images()
        np.testing.assert_allclose(m.ghost(0, 1, yy).numpy(), gaussian_blur(m0.ghost(0, 1, yy), 1.5).numpy(),
                                   atol=1e-14)
        np.testing.assert_allclose(m.ghost(1, 0, yy).numpy(), m0.ghost(1, 0, yy).numpy(), atol=1e-14)


def test_exclusion_zero_for_constant_and_positive_for_identical_textures():
    rng = np.random.default_rng(0)
    tex = torch.tensor(rng.random((64, 64)), dtype=torch.float64)[None, None]
    const = torch.full_like(tex, 0.3)
    assert float(exclusion_loss(tex, const)) == 0.0
    same = float(exclusion_loss(tex, tex))
    assert same > 1e-3
    # an image whose gradients avoid the other's (disjoint supports) scores lower than identical textures
    a = tex.clone()
    a[..., :, 32:] = 0.5
    b = tex.clone()
    b[..., :, :32] = 0.5
    assert float(exclusion_loss(a, b)) < 0.5 * same
    # gradient exists and is finite at the constant image
    c = const.clone().requires_grad_(True)
    exclusion_loss(tex, c).backward()
    assert torch.isfinite(c.grad).all()


def test_mismatch_and_regularizer_values():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.ones(2, 1, 4, 4)
    assert float(mismatch(a, b)) == pytest.approx(2.0)  # mean 1 per slice, summed over 2 slices
    assert float(weight_regularizer(torch.tensor([0.6, 0.3]))) == pytest.approx(0.5 * (0.01 + 0.04))


def test_model_reproduces_paper_equations_for_two_slices():
    m = DDIPModel(2, (40, 44), seed=3)
    out = m()
    y, a = out["y"], out["alpha"]
    f12, f21 = m.filters["f_1_2"], m.filters["f_2_1"]
    i1 = a[0] * y[0:1] + (1 - a[0]) * f12(y[1:2])
    i2 = a[1] * f21(y[0:1]) + (1 - a[1]) * y[1:2]
    assert torch.allclose(out["synth"][0:1], i1, atol=1e-6)
    assert torch.allclose(out["synth"][1:2], i2, atol=1e-6)
    # alpha from the centre pixel of DIP-3's output channels
    w = m.weight_dip(m.z_weights, m.shape)
    assert torch.allclose(a, 0.9 * w[0, :, 20, 22] + 0.05)


def test_ghost_kinds_can_be_swapped():
    m = DDIPModel(2, (32, 32), ghost_kinds=("highpass", "lowpass"))
    k12 = m.filters["f_1_2"].weight.detach()[0, 0]
    k21 = m.filters["f_2_1"].weight.detach()[0, 0]
    assert float(k12.sum()) == pytest.approx(0.0, abs=1e-6) and float(k21.sum()) == pytest.approx(1.0, abs=1e-6)


def test_same_seed_identical_and_alphas_in_bounds():
    b = _small_blend()
    r1 = separate(b.inputs, epochs=8, seed=5, progress=False, mixing_iters=100, device=TEST_DEVICE)
    r2 = separate(b.inputs, epochs=8, seed=5, progress=False, mixing_iters=100, device=TEST_DEVICE)
    r3 = separate(b.inputs, epochs=8, seed=6, progress=False, mixing_iters=100, device=TEST_DEVICE)
    assert_same_fit(r1.separated, r2.separated)
    assert_same_fit(r1.loss, r2.loss)
    assert not np.array_equal(r1.separated, r3.separated)
    for r in (r1, r3):
        assert np.all(r.alpha > 0.05) and np.all(r.alpha < 0.95)
    assert r1.separated.shape == b.inputs.shape
    assert r1.loss.shape == (8, 5) and list(r1.loss[:, 0]) == list(range(1, 9))
    # total = mismatch + gamma * exclusion + weight
    np.testing.assert_allclose(r1.loss[:, 1], r1.loss[:, 2] + 0.5 * r1.loss[:, 3] + r1.loss[:, 4], rtol=1e-5)


def test_interrupted_run_resumed_ends_where_uninterrupted_run_ends(tmp_path):
    b = _small_blend()
    ck = str(tmp_path / "run.ckpt")
    full = separate(b.inputs, epochs=12, seed=1, progress=False, mixing_iters=100, device=TEST_DEVICE,
                    weight_reg_epochs=6)
    # "interrupted" after 6 epochs: a run of 6 epochs that checkpoints every 3
    separate(b.inputs, epochs=6, seed=1, progress=False, mixing_iters=100, device=TEST_DEVICE, weight_reg_epochs=6,
             checkpoint_every=3, checkpoint_path=ck)
    resumed = separate(b.inputs, epochs=12, seed=1, progress=False, mixing_iters=100, device=TEST_DEVICE,
                       weight_reg_epochs=6, checkpoint_path=ck, resume=True)
    assert_same_fit(resumed.separated, full.separated, rtol=1e-6, atol=1e-9)
    assert_same_fit(resumed.loss, full.loss, rtol=1e-6)


def test_band_constraint_keeps_kernels_in_their_band_on_both_paths():
    b = blend(make_phantom("zp-nio", (48, 48), seed=0).normalized())
    kw = dict(epochs=30, seed=1, progress=False, dtype="float64", filters="kernel", mixing="learn")
    fast = separate(b.inputs, band_constraint=True, **kw)
    plain = separate(b.inputs, band_constraint=True, fast=False, **kw)
    free = separate(b.inputs, band_constraint=False, **kw)
    for r in (fast, plain):
        low, high = r.filters["f_1_2"], r.filters["f_2_1"]  # slice 1 receives the low-pass ghost
        assert low.min() >= 0.0  # |K(f)| <= K(0): no high-frequency gain above the mean gain
        assert abs(high.sum()) < 1e-12  # no DC through the high-pass filter
    # unconstrained, Adam moves the high-pass kernel's sum off zero within 30 steps: the projection did work
    assert abs(free.filters["f_2_1"].sum()) > 1e-4
    np.testing.assert_allclose(fast.separated, plain.separated, rtol=1e-6, atol=1e-8)
    # the paper schedule never constrains; the option is recorded in the result's config
    assert SeparationOptions(schedule="paper").band_constraint is False and fast.config["band_constraint"] is True


def test_wide_kernels_start_as_the_paper_filter_and_can_hold_a_wide_ghost():
    # kernel_size 25 starts as the same filter function: the model's synthesis is the same at initialisation (to
    # float32 rounding: the 25x25 kernels are applied through the FFT, the 7x7 ones by conv2d)
    m7, m25 = DDIPModel(2, (40, 44), seed=3), DDIPModel(2, (40, 44), seed=3, kernel_size=25)
    assert tuple(m25.filters["f_1_2"].weight.shape) == (1, 1, 25, 25)
    with torch.no_grad():
        torch.testing.assert_close(m7()["synth"], m25()["synth"], rtol=0, atol=2e-6)
    # a difference-of-Gaussians ghost (1.5-6 px, blend G3) reaches well beyond 7x7: the best 7x7 kernel leaves
    # 6 % of its variance unexplained, the best 25x25 kernel < 0.1 % (least squares over the shifted images)
    from scipy.ndimage import gaussian_filter

    x = make_phantom("au-nio", (64, 64), seed=0).normalized()[0]
    g = gaussian_filter(x, 1.5, mode="reflect") - gaussian_filter(x, 6.0, mode="reflect")
    resid = {}
    for size in (7, 25):
        r, m = size // 2, 12
        cols = [np.roll(x, (r - dy, r - dx), (0, 1))[m:-m, m:-m].ravel() for dy in range(size) for dx in range(size)]
        a, t = np.column_stack(cols), g[m:-m, m:-m].ravel()
        coef = np.linalg.lstsq(a, t, rcond=None)[0]
        resid[size] = (t - a @ coef).var() / t.var()
        # the package's KernelFilter applies that kernel with the same convention (cross-correlation, centred)
        f = KernelFilter("highpass", size).double()
        with torch.no_grad():
            f.weight.copy_(torch.tensor(coef.reshape(1, 1, size, size)))
            out = f(torch.tensor(x)[None, None])[0, 0, m:-m, m:-m].numpy()
        np.testing.assert_allclose(out.ravel(), a @ coef, atol=1e-10)
    assert resid[7] > 0.03 and resid[25] < 1e-3
    with pytest.raises(ValueError, match="odd"):
        SeparationOptions(kernel_size=8)
    with pytest.raises(ValueError, match="--kernel-size"):
        separate(_small_blend().inputs, kernel_size=99, epochs=1, progress=False, mixing="learn")


@pytest.mark.parametrize("size", [FFT_MIN_KERNEL, 25])
def test_fft_kernel_correlation_equals_the_direct_convolution_with_its_gradients(size):
    # wide kernels go through the FFT; values and both gradients must be those of the reflection-padded conv2d
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, 37, 52, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 1, size, size, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 37, 52, generator=g, dtype=torch.float64)
    direct = F.conv2d(F.pad(x, (size // 2,) * 4, mode="reflect"), k, groups=3)
    gx, gk = torch.autograd.grad((direct * w).sum(), (x, k))
    fft = correlate_kernels(x, k)
    fx, fk = torch.autograd.grad((fft * w).sum(), (x, k))
    for a, b in ((fft.detach(), direct.detach()), (fx, gx), (fk, gk)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-10 * float(b.abs().max()))


def test_wide_band_constrained_kernels_of_two_sizes_on_both_paths():
    b = blend(make_phantom("zp-nio", (48, 48), seed=0).normalized())
    # low-pass 11x11 and high-pass 9x9: the fast path stacks them in one 11x11 grouped convolution with a mask
    kw = dict(epochs=20, seed=1, progress=False, dtype="float64", filters="kernel", kernel_size=(11, 9),
              band_constraint=True, mixing="learn")
    fast, plain = separate(b.inputs, **kw), separate(b.inputs, fast=False, **kw)
    np.testing.assert_allclose(fast.separated, plain.separated, rtol=1e-6, atol=1e-8)
    low, high = fast.filters["f_1_2"], fast.filters["f_2_1"]
    assert low.shape == (11, 11) and high.shape == (9, 9)
    assert low.min() >= 0.0 and abs(high.sum()) < 1e-12
    # the fit used the room outside the initial 7x7 support
    ring = np.ones((9, 9), bool)
    ring[1:8, 1:8] = False
    assert np.abs(high[ring]).max() > 1e-5 and fast.config["kernel_size"] == (11, 9)


def test_gamma_ramp_raises_the_exclusion_weight_in_the_loss():
    o = SeparationOptions(gamma_excl=0.5, gamma_ramp=2.0, gamma_ramp_epochs=10)
    assert [o.exclusion_weight(e) for e in (0, 5, 10, 50)] == [0.5, 1.0, 1.5, 1.5]  # linear, then held
    # the paper recipe and the default leave gamma constant; a negative ramp is refused
    assert SeparationOptions(schedule="paper").exclusion_weight(10_000) == 0.5
    with pytest.raises(ValueError, match="gamma_ramp"):
        SeparationOptions(gamma_ramp=-1.0)
    # the fit uses the ramped weight: total = mismatch + w(e) exclusion + weight term, per recorded epoch
    r = separate(_small_blend().inputs, epochs=8, seed=1, progress=False, dtype="float64", gamma_ramp=3.0,
                 gamma_ramp_epochs=4, weight_reg_epochs=2, mixing="learn")
    w = np.array([SeparationOptions(gamma_ramp=3.0, gamma_ramp_epochs=4, mixing="learn").exclusion_weight(e)
                  for e in range(8)])
    np.testing.assert_allclose(r.loss[:, 1], r.loss[:, 2] + w * r.loss[:, 3] + r.loss[:, 4], rtol=1e-10)
    assert w[0] == 0.5 and w[-1] == 2.0 and r.config["gamma_ramp"] == 3.0


def test_input_anchored_exclusion_pairs_high_pass_slices_with_low_pass_inputs():
    assert input_anchor_pairs(("lowpass", "highpass")) == ([1], [0])
    assert input_anchor_pairs(("lowpass", "highpass", "highpass")) == ([1, 2], [0, 0])
    assert input_anchor_pairs(("highpass", "lowpass")) == ([0], [1])
    assert input_anchor_pairs(("highpass", "highpass")) == ([], [])
    # the recorded exclusion term is the plain one plus exclusion(y_2, I_1) over the first 3 scales, balanced
    b = _small_blend()
    x = b.inputs / b.inputs.max()
    for fast in (True, False):
        o = SeparationOptions(epochs=2, dtype="float64", exclusion_input=0.7, fast=fast, threads=1, mixing="learn")
        fit = Fit(x, o, [3], torch.device(TEST_DEVICE))
        out, losses = fit.step(0)
        y, t = out["y"][0].detach(), fit.target[0]
        ref = (exclusion_loss(y[0][None, None], y[1][None, None], balance=True)
               + 0.7 * exclusion_loss(y[1][None, None], t[0][None, None], scales=3, balance=True))
        assert ref.item() > 0
        np.testing.assert_allclose(losses[0, 2].item(), ref.item(), rtol=1e-10)
    assert SeparationOptions().exclusion_input == 1.0 and SeparationOptions(schedule="paper").exclusion_input == 0.0
    with pytest.raises(ValueError, match="exclusion_input"):
        SeparationOptions(exclusion_input=-1.0)


def test_coarse_exclusion_pairs_low_pass_slices_with_high_pass_inputs_at_coarse_scales():
    # the recorded exclusion term gains 0.6 x exclusion(y_1, I_2) at levels 2-4 only: the same as the exclusion of
    # the 4x4-pooled images over 3 scales, balanced
    b = _small_blend()
    x = b.inputs / b.inputs.max()
    pool = torch.nn.functional.avg_pool2d
    for fast in (True, False):
        o = SeparationOptions(epochs=2, dtype="float64", exclusion_input=0.0, exclusion_coarse=0.6, fast=fast,
                              threads=1, mixing="learn")
        fit = Fit(x, o, [3], torch.device(TEST_DEVICE))
        out, losses = fit.step(0)
        y, t = out["y"][0].detach(), fit.target[0]
        coarse = exclusion_loss(pool(y[0][None, None], 4), pool(t[1][None, None], 4), scales=3, balance=True)
        ref = exclusion_loss(y[0][None, None], y[1][None, None], balance=True) + 0.6 * coarse
        assert coarse.item() > 0
        np.testing.assert_allclose(losses[0, 2].item(), ref.item(), rtol=1e-10)
    # first=0 is the plain multi-scale sum
    a, c = torch.rand(1, 2, 32, 32, dtype=torch.float64), torch.rand(1, 2, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(exclusion_pairs(a, c, first=0), exclusion_pairs(a, c))
    assert SeparationOptions(schedule="paper").exclusion_coarse == 0.0
    with pytest.raises(ValueError, match="exclusion_coarse"):
        SeparationOptions(exclusion_coarse=-1.0)
    with pytest.raises(ValueError, match="exclusion_coarse_from"):
        SeparationOptions(exclusion_coarse_from=5)


def test_snapshots_follow_the_fit_and_survive_a_resume(tmp_path):
    b = _small_blend()
    kw = dict(seed=1, progress=False, device=TEST_DEVICE, weight_reg_epochs=6, snapshot_every=4, mixing_iters=100,
              select="final")
    full = separate(b.inputs, epochs=10, **kw)
    # every 4 epochs and at the end; the last one is the returned result, in input units
    assert list(full.snapshot_epochs) == [4, 8, 10] and full.snapshots.shape == (3, 2, 48, 48)
    np.testing.assert_allclose(full.snapshots[-1], full.separated, atol=1e-9)
    # the snapshot at epoch 4 is a different image (the fit moved), not a copy of the final one
    assert np.abs(full.snapshots[0] - full.separated).max() > 1e-3 * np.ptp(full.separated)
    # in input units like `separated`: each is the least-squares affine map of y onto its input
    for i in range(2):
        assert abs(np.mean(full.snapshots[0, i]) - np.mean(b.inputs[i])) < 1e-9
    # the snapshot at epoch 4 is what a 4-epoch run returns
    short = separate(b.inputs, epochs=4, **{**kw, "snapshot_every": 0})
    assert_same_fit(full.snapshots[0], short.separated, rtol=1e-6, atol=1e-9)
    ck = str(tmp_path / "run.ckpt")
    separate(b.inputs, epochs=6, checkpoint_every=3, checkpoint_path=ck, **kw)
    resumed = separate(b.inputs, epochs=10, checkpoint_path=ck, resume=True, **kw)
    assert list(resumed.snapshot_epochs) == [4, 8, 10]
    assert_same_fit(resumed.snapshots, full.snapshots, rtol=1e-6, atol=1e-9)


def test_crosstalk_selection_replaces_only_the_high_pass_slice_and_survives_a_resume(tmp_path):
    b = _small_blend()
    kw = dict(seed=4, progress=False, device="cpu", weight_reg_epochs=6, snapshot_every=4, select_from=4,
              select_every=4, select_guard=0.0, mixing="learn")
    fin = separate(b.inputs, epochs=16, select="final", **kw)
    sel = separate(b.inputs, epochs=16, select="crosstalk", **kw)
    np.testing.assert_array_equal(sel.loss, fin.loss)  # the fit itself is the same
    np.testing.assert_array_equal(sel.separated[0], fin.separated[0])  # slice 1 (low-pass ghost): the final one
    (e1, e2), = sel.config["selected_epochs"]
    # slice 2: the snapshot with the smallest sum of ranks under the partial and the plain crosstalk estimate (ties:
    # partial), computed here from the snapshots (the estimates are invariant to the affine map to input units);
    # this seed makes it an earlier one than the last
    from scipy.stats import rankdata

    regs = crosstalk_regressors(1, fin.separated, b.inputs, ("lowpass", "highpass"))
    ep = [int(e) for e in fin.snapshot_epochs]
    part = [explained_ratio(fin.snapshots[k, 1], regs, crosstalk_nuisance(fin.snapshots[k, 1], "highpass"))
            for k in range(len(ep))]
    plain = [explained_ratio(fin.snapshots[k, 1], regs) for k in range(len(ep))]
    rank = rankdata(part) + rankdata(plain)
    assert e1 == 16 and e2 == ep[min(range(len(ep)), key=lambda k: (rank[k], part[k]))] and e2 < 16
    k = list(fin.snapshot_epochs).index(e2)
    np.testing.assert_allclose(sel.separated[1], fin.snapshots[k, 1], rtol=1e-6, atol=1e-9)
    assert "selected_epochs" not in fin.config
    # the kept images are checkpointed: a resumed run selects the same
    ck = str(tmp_path / "run.ckpt")
    separate(b.inputs, epochs=10, select="crosstalk", checkpoint_every=5, checkpoint_path=ck, **kw)
    resumed = separate(b.inputs, epochs=16, select="crosstalk", checkpoint_path=ck, resume=True, **kw)
    assert resumed.config["selected_epochs"] == sel.config["selected_epochs"]
    np.testing.assert_allclose(resumed.separated, sel.separated, rtol=1e-6, atol=1e-9)


def test_selection_defaults_per_filter_type_and_schedule():
    assert SeparationOptions().select == "loss"  # the estimated mixing's fit: each slice's least-mismatch iterate
    assert SeparationOptions(gamma_excl=0.5).select == "final"  # its other fits do not drift back either
    assert SeparationOptions(mixing="learn").select == "crosstalk"
    assert SeparationOptions(mixing="learn", filters="dip").select == "final"
    assert SeparationOptions(schedule="paper").select == "final"
    assert SeparationOptions(schedule="paper").mixing == "learn" and SeparationOptions().mixing == "estimate"
    with pytest.raises(ValueError, match="select"):
        SeparationOptions(select="best")
    with pytest.raises(ValueError, match="select_guard"):
        SeparationOptions(select_guard=1.5)


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path):
    b = _small_blend()
    ck = str(tmp_path / "run.ckpt")
    separate(b.inputs, epochs=2, seed=1, progress=False, checkpoint_every=1, checkpoint_path=ck)
    with pytest.raises(ValueError, match="different options"):
        separate(b.inputs, epochs=4, seed=2, progress=False, checkpoint_path=ck, resume=True)


def test_resume_accepts_a_checkpoint_written_before_an_option_existed(tmp_path):
    """A checkpoint whose config lacks an option added later (here filter_blur) resumes when the run uses that
    option's default, and is refused when it does not."""
    b = _small_blend()
    ck = str(tmp_path / "run.ckpt")
    full = separate(b.inputs, epochs=4, seed=1, progress=False)
    separate(b.inputs, epochs=2, seed=1, progress=False, checkpoint_every=2, checkpoint_path=ck)
    state = torch.load(ck, weights_only=False)
    del state["config"]["filter_blur"]
    torch.save(state, ck)
    resumed = separate(b.inputs, epochs=4, seed=1, progress=False, checkpoint_path=ck, resume=True)
    assert_same_fit(resumed.separated, full.separated, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="different options"):
        separate(b.inputs, epochs=4, seed=1, progress=False, checkpoint_path=ck, resume=True, filter_blur=1.0)


def test_ensemble_mean_std_and_members():
    b = _small_blend()
    r = separate(b.inputs, epochs=4, seed=0, ensemble=3, member_batch=2, progress=False)
    assert r.members.shape == (3, 2, 48, 48) and r.alpha.shape == (3, 2)
    np.testing.assert_allclose(r.separated, r.members.mean(0))
    np.testing.assert_allclose(r.std, r.members.std(0, ddof=1))
    # fitted one at a time (the CPU default), member 1 is exactly the single run of seed 1
    one_by_one = separate(b.inputs, epochs=4, seed=0, ensemble=3, member_batch=1, progress=False)
    single = separate(b.inputs, epochs=4, seed=1, progress=False)
    assert_same_fit(one_by_one.members[1], single.separated)


@pytest.mark.parametrize("filters,n_slices,epochs,extra", [("kernel", 2, 10, {"mixing": "learn"}),
                                                           ("dip", 2, 3, {"exclusion_ghost": 0.5, "mixing": "learn"}),
                                                           ("dip", 2, 3, {"filter_blur": 1.5, "mixing": "learn"}),
                                                           ("kernel", 3, 2, {"ghost_norm": True, "mixing": "learn",
                                                                             "exclusion_input": 1.0}),
                                                           ("kernel", 2, 10, {"mixing_iters": 50}),
                                                           ("kernel", 3, 4, {"mixing_iters": 20,
                                                                             "exclusion_ghost": 0.5})])
def test_batched_ensemble_equals_separate_runs_and_plain_path(filters, n_slices, epochs, extra):
    """The fast batched path computes the plain path's function: in float64 a member of a 3-member batch equals
    the single plain run of its seed after some Adam steps. (Shallow-DIP filters and ghost_norm amplify rounding
    differences 40-100x per step even in float64, hence fewer steps for them.) With the estimated mixing (the last
    two cases) both paths fit the same grouped image networks; the plain path computes the losses pair by pair."""
    rng = np.random.default_rng(1)
    b = _small_blend()
    x = b.inputs if n_slices == 2 else np.concatenate([b.inputs, rng.random((1, 48, 48))])
    kw = dict(epochs=epochs, filters=filters, progress=False, dtype="float64", device=TEST_DEVICE, weight_reg_epochs=5,
              **extra)
    batched = separate(x, seed=0, ensemble=3, member_batch=3, **kw)
    plain = separate(x, seed=2, fast=False, **kw)
    tol = 1e-7 if filters == "kernel" else 1e-5
    np.testing.assert_allclose(batched.members[2], plain.separated, rtol=tol, atol=tol * np.ptp(x))
    np.testing.assert_allclose(batched.alpha[2], plain.alpha, rtol=tol)


def test_three_slices_end_to_end():
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 40, 40))
    r = separate(imgs, epochs=5, progress=False, filters="dip", mixing="learn")
    assert r.separated.shape == (3, 40, 40) and r.alpha.shape == (3,)
    assert np.all(np.isfinite(r.separated))
    assert np.all(r.alpha > 0.05) and np.all(r.alpha < 0.95)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((1, 64, 64)), "at least 2 slices"),
    (np.zeros((2, 16, 64)), "at least 32x32"),
    (np.zeros((64, 64)), r"\(N, H, W\)"),
    (np.ones((2, 64, 64), dtype=complex), "complex"),
])
def test_bad_arrays_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        separate(bad, epochs=1, progress=False)


def test_nan_and_constant_rejected():
    x = np.random.default_rng(0).random((2, 40, 40))
    x[1, 3, 4] = np.nan
    with pytest.raises(ValueError, match="slice 1 has 1 NaN"):
        separate(x, epochs=1, progress=False)
    x[1] = 2.0
    with pytest.raises(ValueError, match="slice 1 is constant"):
        separate(x, epochs=1, progress=False)


def test_unknown_option_rejected():
    with pytest.raises(ValueError, match="unknown separation options"):
        SeparationOptions.from_dict({"epochs": 3, "gama": 1})
    o = SeparationOptions(filters="dip", epochs=7)
    assert SeparationOptions.from_json(o.to_json()) == o
    assert o.gamma_excl == 0.0 and o.mixing_fit == "unmixed"  # estimated mixing (the default), any filters
    assert SeparationOptions(filters="dip", mixing="learn").gamma_excl == 0.1
    assert SeparationOptions(filters="kernel", mixing="learn").gamma_excl == 0.5


def test_ghost_to_signal_metric_on_known_mixture():
    rng = np.random.default_rng(1)
    s, g = rng.random((2, 50, 50))
    assert ghost_to_signal(3 * s + 1.5 * g + 7, s, g) == pytest.approx(0.5 * g.std() / s.std(), rel=1e-9)
    assert ghost_to_signal(s, s, g) == pytest.approx(0.0, abs=1e-9)
    assert correlation(s, -2 * s) == pytest.approx(-1.0)


@pytest.mark.timeout(900)
def test_quality_on_small_au_nio_blend():
    """64x64 au-nio blend, 300 epochs, the defaults (estimated mixing): both ghosts are removed.

    Bounds (issue acceptance): ghost-to-signal ratio of the separated slice 2 <= 0.2 x the input's and of slice 1
    <= 0.3 x; both correlate better with their true slices than the inputs do. Measured (seed 0): slice 2 0.0006
    (input 0.320), corr 0.999 (0.951); slice 1 0.017 (input 0.573), corr 0.913 (0.861); both returned from epoch 300.
    """
    b = blend(make_phantom("au-nio", (64, 64), seed=0).normalized())
    r = separate(b.inputs, epochs=300, seed=0, progress=False, truth=b.truth, ghosts=b.ghosts, monitor_every=50)
    m_in = separation_metrics(b.inputs, b.truth, b.ghosts)
    m_out = separation_metrics(r.separated, b.truth, b.ghosts)
    assert m_out[1]["ghost_to_signal"] <= 0.2 * m_in[1]["ghost_to_signal"]
    assert m_out[0]["ghost_to_signal"] <= 0.3 * m_in[0]["ghost_to_signal"]
    for i in range(2):
        assert m_out[i]["correlation"] > m_in[i]["correlation"]
    # the returned slices are each slice's least-mismatch iterate (select="loss"), late in the fit; the monitor's
    # last row is the final iterate, which meets the same bounds (the ghost does not come back). How close the final
    # and the returned iterate are is not asserted: float32 fits differ across thread counts (measured at one
    # thread: slice 1 0.022 final against 0.006 returned; at two: 0.017 and 0.017).
    cols = list(r.monitor_columns)
    assert r.config["select"] == "loss" and r.monitor[-1, 0] == 300
    assert all(200 <= e <= 300 for e in r.config["selected_epochs"][0]), r.config["selected_epochs"]
    for i, bound in ((0, 0.3), (1, 0.2)):
        assert r.monitor[-1, cols.index(f"ghost_to_signal_{i + 1}")] <= bound * m_in[i]["ghost_to_signal"]


def test_swapped_outputs_are_matched_back_to_their_inputs():
    from ptycho_ddip.separation.separate import match_to_inputs

    rng = np.random.default_rng(4)
    a, b, c = rng.random((3, 40, 40))
    inputs = np.stack([a + 0.2 * b, b + 0.2 * a, c])
    assert match_to_inputs(np.stack([b, a, c]), inputs) == (1, 0, 2)
    assert match_to_inputs(np.stack([a, b, c]), inputs) == (0, 1, 2)


def test_fused_exclusion_equals_pairwise_reference():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 4, 40, 36, generator=g, dtype=torch.float64)  # 3 members, 4 slices
    i, j = [0, 0, 1, 2], [1, 3, 2, 3]
    for balance in (False, True):
        fused = exclusion_pairs(y[:, i], y[:, j], balance=balance)
        ref = torch.stack([sum(exclusion_loss(y[k, a][None, None], y[k, b][None, None], balance=balance)
                               for a, b in zip(i, j)) for k in range(3)])
        torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-15)


def test_ghost_estimate_is_the_models_ghost_term_in_input_units():
    """ghost_estimate_1 = (1 - alpha_1) f_12(y_2) mapped to input units, recomputed from the saved kernel and y."""
    import torch.nn.functional as F

    from ptycho_ddip.separation.separate import normalize_jointly

    b = _small_blend()
    res = separate(b.inputs, epochs=5, seed=0, progress=False, device=TEST_DEVICE, match_inputs=False, mixing="learn")
    _, (mu, sd, lo, hi) = normalize_jointly(b.inputs)
    y = torch.as_tensor(res.normalized)
    k12 = torch.as_tensor(res.filters["f_1_2"], dtype=torch.float64)[None, None]
    g = F.conv2d(F.pad(y[1][None, None], (3, 3, 3, 3), mode="reflect"), k12)[0, 0].numpy()
    expected = (1 - res.alpha[0]) * g * (hi - lo) * sd
    np.testing.assert_allclose(res.ghost_estimate[0], expected, rtol=1e-4, atol=1e-5 * np.ptp(b.inputs))
    np.testing.assert_allclose(res.ghost_removed, b.inputs - res.ghost_estimate)
