"""In-loop depth regularisers: the kz (missing-wedge) filter against its formula, the inter-slice correlation penalty,
their options, CLI flags and pipeline config, and both inside a (tiny) reconstruction."""
import argparse
import math

import numpy as np
import pytest
import torch

from ptycho_ddip.multislice._options import OptionsError
from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, Reconstructor, reconstruct
from ptycho_ddip.multislice.regularizers import (kz_filter, kz_filter_weights, pearson,
                                                 slice_correlation_penalty)

from conftest import reconstruct_on_thread_ranks

torch.set_num_threads(1)


def _formula(kz, ky, kx, beta):
    kr = math.hypot(ky, kx)
    if kr == 0:
        return 1.0 if kz == 0 else 0.0
    return 1.0 - 2.0 / math.pi * math.atan((beta * abs(kz) / kr) ** 2)


def test_kz_weights_equal_the_formula():
    n, H, W, beta = 3, 6, 8, 0.7
    w = kz_filter_weights(n, (H, W), beta).numpy()
    kz, ky, kx = np.fft.fftfreq(n), np.fft.fftfreq(H), np.fft.fftfreq(W)
    for a in range(n):
        for b in range(H):
            for c in range(W):
                assert w[a, b, c] == pytest.approx(_formula(kz[a], ky[b], kx[c], beta), abs=1e-12)


@pytest.mark.parametrize("mode", [(1, 1, 2), (1, 0, 3), (0, 2, 1), (1, 0, 0), (2, 3, 0)])
def test_kz_filter_scales_a_fourier_mode_by_its_weight(mode):
    """A real 3-D Fourier mode cos(2 pi (kz z + ky y + kx x)) comes out multiplied by W(kz, ky, kx)."""
    n, H, W, beta = 4, 16, 16, 0.5
    a, b, c = mode
    z, y, x = np.meshgrid(np.arange(n), np.arange(H), np.arange(W), indexing="ij")
    stack = np.cos(2 * np.pi * (a * z / n + b * y / H + c * x / W))
    out = kz_filter(torch.from_numpy(stack), beta).numpy()
    expect = _formula(a / n, b / H, c / W, beta) * stack
    np.testing.assert_allclose(out, expect, atol=1e-12)


def test_kz_filter_leaves_a_z_constant_object_unchanged():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.normal(size=(20, 24)))
    stack = image.expand(3, -1, -1).clone()
    for beta in (0.05, 1.0, 50.0):
        torch.testing.assert_close(kz_filter(stack, beta), stack, atol=1e-12, rtol=0)


def test_kz_filter_on_two_slices_averages_low_frequencies():
    """Two slices: the mean is kept, the difference is damped by W(1/2, kr): gone at DC, nearly kept at Nyquist."""
    rng = np.random.default_rng(1)
    stack = torch.from_numpy(rng.normal(size=(2, 32, 32)))
    out = kz_filter(stack, 0.2)
    torch.testing.assert_close(out.mean(0), stack.mean(0), atol=1e-12, rtol=0)
    d_in, d_out = (torch.fft.fft2(s[0] - s[1]) for s in (stack, out))
    ratio = (d_out / d_in).real
    assert abs(float(ratio[0, 0])) < 1e-12 and float(ratio[0, 16]) == pytest.approx(_formula(0.5, 0, 0.5, 0.2))


def test_pearson_and_penalty():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 16, generator=g, dtype=torch.float64)
    b = torch.randn(16, 16, generator=g, dtype=torch.float64)
    assert float(pearson(a, 2 * a + 3)) == pytest.approx(1.0)
    assert float(pearson(a, -a)) == pytest.approx(-1.0)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:8] = True
    c = torch.where(mask, a, b)  # equals a on the mask only
    assert float(pearson(a, c, mask)) == pytest.approx(1.0)
    stack = torch.stack([a, a + b, b])
    rho = [float(pearson(stack[i], stack[j])) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert float(slice_correlation_penalty(stack)) == pytest.approx(sum(r * r for r in rho))
    assert float(slice_correlation_penalty(stack[:1])) == 0.0


def test_correlation_penalty_decorrelates_two_correlated_slices():
    """Toy problem: fit two slices to targets that share a component, with and without the penalty."""
    g = torch.Generator().manual_seed(2)
    s1, s2 = torch.randn(2, 32, 32, generator=g, dtype=torch.float64)
    targets = torch.stack([s1, 0.7 * s1 + 0.7 * s2])  # correlation ~0.7

    def fit(weight):
        x = targets.clone().requires_grad_(True)
        adam = torch.optim.Adam([x], lr=0.02)
        for _ in range(200):
            adam.zero_grad()
            loss = ((x - targets) ** 2).mean() + weight * slice_correlation_penalty(x)
            loss.backward()
            adam.step()
        return float(pearson(x[0].detach(), x[1].detach()))

    plain, penalised = fit(0.0), fit(1.0)
    assert plain == pytest.approx(float(pearson(*targets)), abs=1e-3) and plain > 0.6
    assert abs(penalised) < 0.5 * plain


# ------------------------------------------------------------------------------------------------ options / CLI

def test_options_validation_and_defaults():
    assert ReconstructionOptions().depth_reg == "none" and ReconstructionOptions().depth_reg_weight is None
    assert ReconstructionOptions(depth_reg="kz").depth_reg_weight == 0.1
    assert ReconstructionOptions(depth_reg="zcorr").depth_reg_weight == 1.0
    o = ReconstructionOptions(depth_reg="kz", depth_reg_weight=0.3, depth_reg_every=5)
    assert ReconstructionOptions.from_json(o.to_json()) == o
    for bad in (dict(depth_reg="tv"), dict(depth_reg="kz", depth_reg_weight=0.0),
                dict(depth_reg="zcorr", depth_reg_weight=-1.0), dict(depth_reg_every=0),
                dict(depth_reg="kz", depth_reg_weight=float("nan")), dict(depth_reg="kz", depth_reg_weight=True)):
        with pytest.raises(OptionsError):
            ReconstructionOptions(**bad)


def test_cli_flags_parse_into_options():
    from ptycho_ddip.cli_multislice import _add_reconstruct, reconstruction_options_from_args

    p = argparse.ArgumentParser()
    _add_reconstruct(p)
    args = p.parse_args(["d.h5", "-o", "o.h5", "--depth-reg", "kz", "--depth-reg-weight", "0.25",
                         "--depth-reg-every", "3", "--device", "cpu"])
    o = reconstruction_options_from_args(args)
    assert (o.depth_reg, o.depth_reg_weight, o.depth_reg_every) == ("kz", 0.25, 3)
    o = reconstruction_options_from_args(p.parse_args(["d.h5", "-o", "o.h5", "--depth-reg", "zcorr"]))
    assert (o.depth_reg, o.depth_reg_weight) == ("zcorr", 1.0)
    with pytest.raises(SystemExit):
        p.parse_args(["d.h5", "-o", "o.h5", "--depth-reg", "tv"])


def test_pipeline_config_carries_the_depth_regularisers():
    from ptycho_ddip.pipeline import PipelineOptions

    o = PipelineOptions.from_dict({"pass1": {"depth_reg": "kz", "depth_reg_every": 2},
                                   "pass2": {"depth_reg": "zcorr", "depth_reg_weight": 0.5}})
    assert (o.pass1.depth_reg, o.pass1.depth_reg_weight, o.pass1.depth_reg_every) == ("kz", 0.1, 2)
    assert (o.pass2.depth_reg, o.pass2.depth_reg_weight) == ("zcorr", 0.5)
    assert PipelineOptions.from_json(o.to_json()) == o
    with pytest.raises(OptionsError, match="depth_reg"):
        PipelineOptions.from_dict({"pass1": {"depth_reg": "wedge"}})


# ------------------------------------------------------------------------------------------------ in the loop

@pytest.fixture(scope="module")
def tiny():
    from ptycho_ddip.multislice.simulate import simulate

    return simulate(shape=(48, 48), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=4.0,
                    dose=1e5, seed=3)


FAST = dict(epochs=3, batch_size=8, device="cpu")


def test_kz_in_the_loop_filters_the_object_every_k_epochs(tiny):
    opts = ReconstructionOptions(**FAST, depth_reg="kz", depth_reg_weight=0.2, depth_reg_every=2)
    rec = Reconstructor(tiny, opts)
    rec.run_epoch()
    phase1 = rec.obj_b.detach().clone()
    rec.run_epoch()  # epoch 2: filtered after the update
    plain = Reconstructor(tiny, ReconstructionOptions(**FAST))
    plain.run_epoch()
    torch.testing.assert_close(plain.obj_b.detach(), phase1)  # epoch 1 is not filtered
    plain.run_epoch()
    expect = kz_filter(plain.obj_b.detach().double(), 0.2).float()
    torch.testing.assert_close(rec.obj_b.detach(), expect, atol=1e-6, rtol=0)
    # a z-constant object is a fixed point of the filter in the reconstructor too (both parameterisations)
    for par in ("phase", "complex"):
        r = Reconstructor(tiny, ReconstructionOptions(**FAST, parameterization=par, depth_reg="kz"),
                          initial_object=np.exp(1j * 0.3 + 0.1 * np.random.default_rng(0).normal(size=(1, 48, 48)))
                          .repeat(2, 0))
        before = r.object().detach().clone()
        r.apply_kz_filter()
        torch.testing.assert_close(r.object().detach(), before, atol=1e-5, rtol=0)


def test_zcorr_in_the_loop_lowers_the_slices_correlation(tiny):
    def corr(res):
        from ptycho_ddip.multislice.xrf import illuminated_mask

        m = illuminated_mask(tiny.positions_px, tiny.probe, tiny.object_shape, 0.1)
        ph = np.angle(res.object)
        return abs(np.corrcoef(ph[0][m], ph[1][m])[0, 1])

    base = dict(FAST, epochs=6, lr_object=0.02)
    plain = reconstruct(tiny, ReconstructionOptions(**base), progress=False)
    zc = reconstruct(tiny, ReconstructionOptions(**base, depth_reg="zcorr", depth_reg_weight=1.0), progress=False)
    assert corr(zc) < 0.7 * corr(plain), (corr(zc), corr(plain))
    assert zc.loss.shape == (6,) and np.all(np.isfinite(zc.loss))


def test_zcorr_on_one_slice_and_under_two_ranks(tiny):
    """One slice: no pair, no penalty (the XRF seeding's single-slice run). Two ranks (threads with an in-process
    all-reduce): the penalty is added once, after the sum, so the result equals the serial one."""
    one = reconstruct(tiny, ReconstructionOptions(**FAST, n_slices=1, depth_reg="zcorr"), progress=False)
    assert one.object.shape[0] == 1 and np.all(np.isfinite(one.loss))
    opts = ReconstructionOptions(**FAST, depth_reg="zcorr")
    serial = reconstruct(tiny, opts, progress=False)
    results = reconstruct_on_thread_ranks(tiny, opts, 2)
    for r in range(2):
        np.testing.assert_allclose(results[r].loss, serial.loss, rtol=1e-5)
        assert np.abs(np.angle(results[r].object) - np.angle(serial.object)).max() < 2e-3
