"""DDIP engine: networks, losses, model equations, options, determinism, resume, ensembles, N = 3, quality."""
import dataclasses
import json
import pathlib

import numpy as np
import pytest
import torch

from ptycho_ddip.phantoms import blend, make_phantom
from ptycho_ddip.separation.losses import exclusion_loss, exclusion_pairs, mismatch, weight_regularizer
from ptycho_ddip.separation.metrics import (correlation, crosstalk_nuisance, crosstalk_regressors, explained_ratio,
                                          ghost_to_signal, separation_metrics)
from ptycho_ddip.separation.model import DDIPModel
from ptycho_ddip.separation.networks import KernelFilter, ShallowDIPFilter, SkipDIP
from ptycho_ddip.optionsbase import OptionsError
from ptycho_ddip.separation.options import MOVED, EstimateOptions, LearnedOptions, SeparationOptions
from ptycho_ddip.separation.engine import CHECKPOINT_FORMAT, Checkpoint, Engine, Hook
from ptycho_ddip.separation.fit import Fit, exclusion_form, input_anchor_pairs
from ptycho_ddip.separation.separate import normalize_jointly, separate

from conftest import TEST_DEVICE, assert_same_fit


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
    np.random.seed(1234)


#: a short mixing estimate for the tests of the estimated mixing; the old default of the learnable mixing
#: (schedule "balanced", mixing "learn"), now learned options with method="paper"
EST = {"iters": 100}
BAL = {"exclusion_balance": True, "exclusion_input": 1.0}


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
    r1 = separate(b.inputs, epochs=8, seed=5, progress=False, estimate=EST, device=TEST_DEVICE)
    r2 = separate(b.inputs, epochs=8, seed=5, progress=False, estimate=EST, device=TEST_DEVICE)
    r3 = separate(b.inputs, epochs=8, seed=6, progress=False, estimate=EST, device=TEST_DEVICE)
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
    full = separate(b.inputs, epochs=12, seed=1, progress=False, estimate=EST, device=TEST_DEVICE)
    # "interrupted" after 6 epochs: a run of 6 epochs that checkpoints every 3
    separate(b.inputs, epochs=6, seed=1, progress=False, estimate=EST, device=TEST_DEVICE, checkpoint_every=3,
             checkpoint_path=ck)
    resumed = separate(b.inputs, epochs=12, seed=1, progress=False, estimate=EST, device=TEST_DEVICE,
                       checkpoint_path=ck, resume=True)
    assert_same_fit(resumed.separated, full.separated, rtol=1e-6, atol=1e-9)
    assert_same_fit(resumed.loss, full.loss, rtol=1e-6)


def test_input_anchored_exclusion_pairs_high_pass_slices_with_low_pass_inputs():
    assert input_anchor_pairs(("lowpass", "highpass")) == ([1], [0])
    assert input_anchor_pairs(("lowpass", "highpass", "highpass")) == ([1, 2], [0, 0])
    assert input_anchor_pairs(("highpass", "lowpass")) == ([0], [1])
    assert input_anchor_pairs(("highpass", "highpass")) == ([], [])
    # the recorded exclusion term is the plain one plus exclusion(y_2, I_1) over the first 3 scales, balanced
    b = _small_blend()
    x = b.inputs / b.inputs.max()
    for fast in (True, False):
        o = SeparationOptions(method="paper", epochs=2, dtype="float64", threads=1, experimental={"fast": fast},
                              learned={"exclusion_balance": True, "exclusion_input": 0.7})
        fit = Fit(x, o, [3], torch.device(TEST_DEVICE))
        out, losses = fit.step(0)
        y, t = out["y"][0].detach(), fit.target[0]
        ref = (exclusion_loss(y[0][None, None], y[1][None, None], balance=True)
               + 0.7 * exclusion_loss(y[1][None, None], t[0][None, None], scales=3, balance=True))
        assert ref.item() > 0
        np.testing.assert_allclose(losses[0, 2].item(), ref.item(), rtol=1e-10)
    # the paper's recipe has no anchor; the estimated mixing's fit with gamma_excl > 0 always has it
    assert SeparationOptions(method="paper").learned.exclusion_input == 0.0
    assert exclusion_form(SeparationOptions(gamma_excl=0.5)) == {"balance": True, "input_weight": 1.0,
                                                                 "input_scales": 3}
    with pytest.raises(ValueError, match="learned.exclusion_input"):
        SeparationOptions(method="paper", learned={"exclusion_input": -1.0})


def test_snapshots_follow_the_fit_and_survive_a_resume(tmp_path):
    b = _small_blend()
    kw = dict(seed=1, progress=False, device=TEST_DEVICE, snapshot_every=4, estimate=EST, select="final")
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
    kw = dict(seed=4, progress=False, device="cpu", snapshot_every=4, method="paper",
              learned={**BAL, "weight_reg_epochs": 6, "select_from": 4, "select_every": 4, "select_guard": 0.0})
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


def test_selection_defaults_per_method():
    assert SeparationOptions().select == "loss"  # the estimated mixing's fit: each slice's least-mismatch iterate
    assert SeparationOptions(gamma_excl=0.5).select == "final"  # its other fits do not drift back either
    assert SeparationOptions(method="paper").select == "final"  # the published recipe
    assert SeparationOptions(method="paper", learned={"filters": "dip"}).select == "final"
    assert SeparationOptions(method="paper", select="crosstalk").select == "crosstalk"
    assert SeparationOptions().method == "estimate"
    with pytest.raises(ValueError, match="select"):
        SeparationOptions(select="best")
    with pytest.raises(ValueError, match="select='crosstalk' needs method='paper'"):
        SeparationOptions(select="crosstalk")
    with pytest.raises(ValueError, match="select='loss' needs method='estimate'"):
        SeparationOptions(method="paper", select="loss")
    with pytest.raises(ValueError, match="learned.select_guard"):
        SeparationOptions(method="paper", learned={"select_guard": 1.5})


def test_resume_refuses_a_checkpoint_of_other_options(tmp_path):
    b = _small_blend()
    ck = str(tmp_path / "run.ckpt")
    separate(b.inputs, epochs=2, seed=1, progress=False, checkpoint_every=1, checkpoint_path=ck)
    with pytest.raises(ValueError, match="different options"):
        separate(b.inputs, epochs=4, seed=2, progress=False, checkpoint_path=ck, resume=True)


def test_resume_refuses_a_checkpoint_of_another_format(tmp_path):
    """Checkpoints carry a format version; one of another version (here a format-1 checkpoint, which had none) is
    refused with what to do, whatever its options; the log interval may change on a resume."""
    b = _small_blend()
    ck = str(tmp_path / "run.ckpt")
    kw = dict(seed=1, progress=False, estimate=EST)
    separate(b.inputs, epochs=2, checkpoint_every=2, checkpoint_path=ck, **kw)
    state = torch.load(ck, weights_only=False)
    assert state["format"] == CHECKPOINT_FORMAT
    resumed = separate(b.inputs, epochs=3, checkpoint_path=ck, resume=True, experimental={"log_every": 1}, **kw)
    assert_same_fit(resumed.separated, separate(b.inputs, epochs=3, **kw).separated)
    del state["format"]
    torch.save(state, ck)
    with pytest.raises(ValueError, match="checkpoint of format 1.*delete it or run without --resume"):
        separate(b.inputs, epochs=4, checkpoint_path=ck, resume=True, **kw)


class _Log(Hook):
    """A hook of the caller's: records every call; its record is its checkpointed state."""

    key = "log"

    def __init__(self):
        self.calls = []

    def begin(self, engine):
        self.calls.append(("begin", engine.start))

    def after_step(self, engine, epoch, out):
        self.calls.append(("step", epoch, float(engine.history[epoch, 0, 0])))

    def end(self, engine):
        self.calls.append(("end",))

    def finish(self, engine, last, returned):
        self.calls.append(("finish",))
        return returned

    def state_dict(self):
        return list(self.calls)

    def load_state_dict(self, state):
        self.calls = list(state)


def test_engine_runs_hooks_in_order_and_a_resumed_fit_ends_where_the_uninterrupted_one_ends(tmp_path):
    """The engine calls each hook once per step with that step's losses, saves every hook's state in its
    checkpoints, and a fit restored from the checkpoint of epoch 3 ends bit for bit where the uninterrupted fit
    ends (float64; one thread); hooks do not change the fit."""
    torch.set_num_threads(1)
    target = normalize_jointly(_small_blend().inputs)[0]
    opts = SeparationOptions(method="paper", epochs=5, dtype="float64", learned=BAL)
    config = {**opts.to_dict(), "seeds": [0]}
    ck = str(tmp_path / "engine.ckpt")
    log = _Log()
    full = Engine(Fit(target, opts, [0], torch.device("cpu")), 5, [log, Checkpoint(ck, 3, config)])
    last, returned = full.run()
    assert returned is last  # no hook replaced the returned outputs
    steps = [c for c in log.calls if c[0] == "step"]
    assert [c[1] for c in steps] == [0, 1, 2, 3, 4] and log.calls[0] == ("begin", 0)
    assert log.calls[-2:] == [("end",), ("finish",)]
    assert [c[2] for c in steps] == full.history[:, 0, 0].tolist()
    bare = Engine(Fit(target, opts, [0], torch.device("cpu")), 5)
    bare.run()
    assert torch.equal(bare.history, full.history)  # the hooks changed nothing
    resumed_log = _Log()
    resumed = Engine(Fit(target, opts, [0], torch.device("cpu")), 5, [resumed_log])
    resumed.restore(ck, config)
    assert resumed.start == 3 and resumed_log.calls == log.calls[:4]  # begin, steps 0-2: the checkpoint's state
    last2, _ = resumed.run()
    assert resumed_log.calls[4] == ("begin", 3) and resumed_log.calls[5:] == log.calls[4:]
    assert torch.equal(resumed.history, full.history) and torch.equal(last2["y"], last["y"])
    with pytest.raises(ValueError, match="different options"):
        Engine(Fit(target, opts, [1], torch.device("cpu")), 5).restore(ck, {**config, "seeds": [1]})


@pytest.mark.parametrize("method", ["estimate", "paper"])
def test_every_hooks_state_survives_a_resume(tmp_path, method):
    """Best iterate (estimate) or kept iterates (paper), monitor and snapshots are all checkpointed: a separation
    interrupted at epoch 6 and resumed returns what the uninterrupted one returns (one thread: bit for bit)."""
    b = _small_blend()
    kw = dict(seed=2, progress=False, device=TEST_DEVICE, threads=1, snapshot_every=3, monitor_every=2,
              truth=b.truth)
    if method == "estimate":
        kw.update(estimate=EST)
    else:
        kw.update(method="paper", select="crosstalk",
                  learned={**BAL, "select_from": 2, "select_every": 2, "select_guard": 0.0})
    full = separate(b.inputs, epochs=10, **kw)
    ck = str(tmp_path / "run.ckpt")
    separate(b.inputs, epochs=6, checkpoint_every=3, checkpoint_path=ck, **kw)
    resumed = separate(b.inputs, epochs=10, checkpoint_path=ck, resume=True, **kw)
    for name in ("separated", "loss", "monitor", "snapshots", "snapshot_epochs"):
        assert_same_fit(getattr(resumed, name), getattr(full, name))
    assert resumed.config["selected_epochs"] == full.config["selected_epochs"]


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


@pytest.mark.parametrize("filters,n_slices,epochs,extra", [
    ("kernel", 2, 10, {"method": "paper", "learned": {**BAL, "weight_reg_epochs": 5}}),
    ("dip", 2, 3, {"method": "paper", "learned": {**BAL, "filters": "dip", "weight_reg_epochs": 5}}),
    ("kernel", 3, 2, {"method": "paper", "learned": {**BAL, "weight_reg_epochs": 5}}),
    ("kernel", 2, 10, {"estimate": {"iters": 50}}),
    ("kernel", 3, 4, {"estimate": {"iters": 20}})])
def test_batched_ensemble_equals_separate_runs_and_plain_path(filters, n_slices, epochs, extra):
    """The fast batched path computes the plain path's function: in float64 a member of a 3-member batch equals
    the single plain run of its seed after some Adam steps. (Shallow-DIP filters amplify rounding differences
    40-100x per step even in float64, hence fewer steps for them.) With the estimated mixing (the last
    two cases) both paths fit the same grouped image networks; the plain path computes the losses pair by pair."""
    rng = np.random.default_rng(1)
    b = _small_blend()
    x = b.inputs if n_slices == 2 else np.concatenate([b.inputs, rng.random((1, 48, 48))])
    kw = dict(epochs=epochs, progress=False, dtype="float64", device=TEST_DEVICE, **extra)
    batched = separate(x, seed=0, ensemble=3, member_batch=3, **kw)
    plain = separate(x, seed=2, experimental={"fast": False}, **kw)
    tol = 1e-7 if filters == "kernel" else 1e-5
    np.testing.assert_allclose(batched.members[2], plain.separated, rtol=tol, atol=tol * np.ptp(x))
    np.testing.assert_allclose(batched.alpha[2], plain.alpha, rtol=tol)


def test_three_slices_end_to_end():
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 40, 40))
    r = separate(imgs, epochs=5, progress=False, method="paper", learned={**BAL, "filters": "dip"})
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


def test_unknown_option_rejected_and_json_round_trip():
    with pytest.raises(OptionsError, match=r"unknown separation option\(s\) \['gama'\]"):
        SeparationOptions.from_dict({"epochs": 3, "gama": 1})
    with pytest.raises(OptionsError, match=r"unknown learned option\(s\) \['filter'\]"):
        SeparationOptions.from_dict({"method": "paper", "learned": {"filter": "dip"}})
    for o in (SeparationOptions(epochs=7, estimate={"iters": 9}),
              SeparationOptions(method="paper", learned={"filters": "dip"}, experimental={"channels": [4, 8],
                                                                                           "skip_channels": [0, 2]})):
        assert SeparationOptions.from_json(o.to_json()) == o
        assert SeparationOptions.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    assert SeparationOptions().gamma_excl == 0.0  # estimated mixing (the default)
    assert SeparationOptions(method="paper", learned={"filters": "dip"}).gamma_excl == 0.1
    assert SeparationOptions(method="paper").gamma_excl == 0.5
    # 20 top-level options at most: the core and three groups
    assert len(dataclasses.fields(SeparationOptions)) <= 20


@pytest.mark.parametrize("key,value,says", [
    ("schedule", "paper", "'schedule' is now method"),
    ("mixing", "learn", "'mixing' is now method.*'learn' -> method='paper'"),
    ("mixing_sigmas", [1.0], "'mixing_sigmas' is now estimate.sigmas_px"),
    ("mixing_iters", 10, "'mixing_iters' is now estimate.iters"),
    ("filters", "dip", "'filters' is now learned.filters"),
    ("exclusion_input", 1.0, "'exclusion_input' is now learned.exclusion_input"),
    ("fast", False, "'fast' is now experimental.fast"),
    ("filter_blur", 1.5, "'filter_blur' was removed: it failed validation"),
    ("kernel_size", 25, "'kernel_size' was removed: it failed validation"),
    ("mixing_fit", "mixed", "'mixing_fit' was removed"),
    ("lr_schedule", "cosine", "'lr_schedule' was removed"),
])
def test_options_of_older_versions_name_what_replaced_them(key, value, says):
    with pytest.raises(OptionsError, match=says):
        SeparationOptions.from_dict({"epochs": 5, key: value})
    with pytest.raises(OptionsError, match=says):  # keyword arguments of separate() alike
        separate(_small_blend().inputs, progress=False, **{key: value})
    assert set(MOVED) >= {"schedule", "mixing", "mixing_sigmas", "mixing_iters", "mixing_lr", "mixing_blur",
                          "gamma_ramp", "gamma_ramp_epochs", "exclusion_coarse", "exclusion_coarse_from",
                          "ghost_norm", "exclusion_ghost", "band_constraint"}


def test_option_groups_belong_to_their_method():
    """``learned`` exists only with method="paper", ``estimate`` only with method="estimate"; updated() moves
    between methods and merges group tables."""
    assert SeparationOptions().learned is None and SeparationOptions().estimate == EstimateOptions()
    assert SeparationOptions(method="paper").estimate is None
    assert SeparationOptions(method="paper").learned == LearnedOptions()
    with pytest.raises(OptionsError, match="'learned' options apply to method='paper'"):
        SeparationOptions(learned={"filters": "dip"})
    with pytest.raises(OptionsError, match="'learned' options apply to method='paper'"):
        SeparationOptions.from_dict({"learned": {}})
    with pytest.raises(OptionsError, match="'estimate' options apply to method='estimate'"):
        SeparationOptions(method="paper", estimate={"iters": 5})
    with pytest.raises(OptionsError, match="method must be one of"):
        SeparationOptions(method="balanced")
    with pytest.raises(OptionsError, match="option estimate.iters must be an integer"):
        SeparationOptions(estimate={"iters": 2.5})
    o = SeparationOptions(estimate={"iters": 7, "blur_px": 1.5})
    assert o.updated(estimate={"iters": 9}).estimate == EstimateOptions(iters=9, blur_px=1.5)
    p = o.updated(method="paper", learned={"filters": "dip"})
    assert p.estimate is None and p.filters == "dip" and p.gamma_excl == 0.1 and p.select == "final"
    assert p.updated(method="estimate").select == "loss" and o.filters is None


def test_separation_imports_neither_io_nor_plotting_nor_multislice():
    """The engine takes arrays and returns arrays: every module of ptycho_ddip.separation imports without the file
    layer, the figures or the multislice physics (files: ptycho_ddip.separation_files)."""
    import pkgutil
    import subprocess
    import sys

    import ptycho_ddip.separation as package

    names = [f"ptycho_ddip.separation.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['ptycho_ddip', 'io'], ['ptycho_ddip', 'plotting'], ['ptycho_ddip', 'multislice']))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert len(names) >= 12 and out.strip() == "[]", out
    # nor lazily, inside functions
    import re

    for path in pathlib.Path(package.__file__).parent.glob("*.py"):
        found = re.findall(r"^\s*(?:(?:from|import)\s+(?:\.\.|ptycho_ddip\.)|from\s+(?:\.\.|ptycho_ddip)\s+import\s+)"
                           r"(io|plotting|multislice)\b", path.read_text(), flags=re.M)
        assert not found, (path.name, found)


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

    b = _small_blend()
    res = separate(b.inputs, epochs=5, seed=0, progress=False, device=TEST_DEVICE, method="paper", learned=BAL,
                   experimental={"match_inputs": False})
    _, (mu, sd, lo, hi) = normalize_jointly(b.inputs)
    y = torch.as_tensor(res.normalized)
    k12 = torch.as_tensor(res.filters["f_1_2"], dtype=torch.float64)[None, None]
    g = F.conv2d(F.pad(y[1][None, None], (3, 3, 3, 3), mode="reflect"), k12)[0, 0].numpy()
    expected = (1 - res.alpha[0]) * g * (hi - lo) * sd
    np.testing.assert_allclose(res.ghost_estimate[0], expected, rtol=1e-4, atol=1e-5 * np.ptp(b.inputs))
    np.testing.assert_allclose(res.ghost_removed, b.inputs - res.ghost_estimate)
