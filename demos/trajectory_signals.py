"""Look for a ground-truth-free signal of the ghost's comeback along DDIP fits (issue 5 study, session 3).

    python demos/trajectory_signals.py --out out/signals                 # fit and analyse (2 workers, ~35 min)
    python demos/trajectory_signals.py --out out/signals --analyze-only  # re-analyse saved trajectories
    python demos/trajectory_signals.py --out out/signals --compare --variants default,band --filters kernel

Every (phantom, blend, filter type, variant) is fitted with the learnable mixing (``mixing="learn"``: this study
of sections 3-13 predates the estimated mixing of section 14, now the package default) and its default options (96x96, seed 0, 2000 epochs, one
thread per worker) through the same ``Fit`` object ``separate`` uses. Every ``--every`` epochs the network images y,
the model's own ghost images f_ij(y_j) and the alphas are saved (``OUT/<run>.npz``). The analysis then scores, per
snapshot, the true ghost-to-signal ratio (GSR) of each slice and these truth-free candidate signals:

- ``model_ghost``: |corr(y_i, f_ij(y_j))|, the slice against the ghost image the model itself attributes to it;
- ``band``: |corr(y_i, band(y_j))| with a fixed band (Gaussian low-pass sigma 2 px for slice 1, y - G(1.5 px)
  high-pass for slice 2);
- ``lsfilter``: the fraction of y_i's variance explained by the best 7x7 linear filter of y_j;
- ``hf``: the high-frequency fraction var(y_2 - G(1 px) y_2) / var(y_2) of slice 2 (reported, not a selection rule).

A selection rule takes, per slice, the snapshot (epoch >= 100) where its signal is smallest; it passes a run when the
selected slices meet the issue's criterion (slice 2's GSR <= 0.2 x input and <= max(1.5 x best on the trajectory,
0.05 x input); slice 1's GSR not above its input's). Also tabulated: slice 2 taken at a fixed early epoch with slice 1
taken at the end.

Variant ``band``: the defaults with ``band_constraint=True`` (kernel filters kept in their band).
Variant ``bandpen`` (an experiment for shallow-DIP filters, which cannot be clipped like a kernel): the defaults
plus ``--band-penalty`` x relu(r - 1)^2 for every low-pass ghost, r = high-frequency amplitude of f_ij(y_j) over
that of y_j. Measured: it fails, because the fit raises y_j's high frequencies instead of taming the filter
(docs/separation_stability.md section 6).
Variant ``wide`` (kernels only): ``kernel_size=--wide-size`` (default 25x25), initialised with the 7x7 kernels in
the centre, so the initial filters are the paper's but a wide ghost such as the DoG 1.5-6 px of blend G3 can be
represented. Variant ``wideband``: ``wide`` with ``band_constraint=True``. Variant ``ramp<K>`` (e.g. ``ramp2``): the
defaults with ``gamma_ramp=K``: the exclusion weight rises linearly from gamma_excl to (1 + K) gamma_excl over the first
2000 epochs, so that the exclusion grows with the image DIPs' capacity to fit fine detail. Variant ``lp<A>hp<B>`` (e.g. ``lp25hp7``):
``kernel_size=(A, B)``, low-pass A x A and high-pass B x B, with ``band_constraint=True``. Variant ``anchor<W>``
(e.g. ``anchor`` = ``anchor1``): ``exclusion_input=W``, slice 2 excluded against the input of slice 1 as well.
Variant ``ascales<N>``: the anchor over N scales. Variant ``ranchor<W>s<L>``: ``exclusion_coarse=W``,
``exclusion_coarse_from=L`` (slice 1 against the input of slice 2 from scale level L; section 11). Variant ``dog``:
after every Adam step the high-pass kernels are projected onto isotropic difference-of-Gaussian bands
(``DOG_SIGMAS``; use with a wide high-pass kernel, e.g. ``lp7hp25+dog``; an experiment, not a package option).
Variant ``open<N>`` (e.g. ``anchor+open1000``): a 25 x 25 high-pass kernel (``kernel_size=(7, 25)``, no band
constraint) whose outer ring stays shut (masked: zero, no gradient) until epoch N, so that the fit starts as the
default one; from N the whole support is free and the high-pass kernel is kept zero-sum (section 12; an experiment,
not a package option). Variant ``switch<T>`` (e.g. ``anchor+switch0.4``): as ``open<N>``, but the ring opens at the
first check (every 50 epochs from epoch 200) where slice 1's truth-free plain crosstalk estimate drops below T, i.e.
once y_1 no longer holds slice 2's features; the opening epoch is saved as ``opened``. Flags for ``open``/``switch``:
``warm`` starts the opened ring's Adam second moments at the inner 7x7's mean, ``ring`` keeps only the ring zero-sum
(the inner 7x7 stays free, as in the default), so that opening does not change the filter at that step (section 13).
Variant ``lpblur<S>`` (shallow-DIP filters): ``filter_blur=S``, a fixed S px Gaussian blur after each low-pass
filter (section 13). Variants joined by ``+`` combine (``anchor+lp25hp7``). Since section 9 the package default
includes the anchor (``exclusion_input=1``): the saved ``default`` trajectories of earlier rounds are the variant
``noanchor`` today.
Variant ``lock``: at ``--lock-epoch`` the weight DIP is frozen (alphas fixed) and every ghost's gain
std(f_ij(y_j)) / std(y_j) is held at its value then, so that the model can no longer move ghost amplitude from the
ghost term into y_i by shrinking the ghost weight or the filter gain (an experiment, not a package option).
Writes ``OUT/trajectory_signals_<variant>.md`` and ``.json`` (and with ``--filmstrips`` one filmstrip per run, as
``ptycho-ddip separate --snapshot-every`` draws it; the slices there are not matched to the inputs).
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.ndimage import gaussian_filter

from validate_separation import BLENDS

RULES = ("model_ghost", "band", "lsfilter", "crosstalk")
GUARD = 0.9  # the ``crosstalk2`` selection only takes snapshots whose slice 2 correlates >= GUARD with the final one
FIXED_EPOCHS = (100, 200, 400)


def _lock_mixing(model, torch) -> None:
    """Freeze the alphas and hold every ghost's gain relative to its source at its current value."""
    for p in model.weights_net.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        y0 = model()["y"]
        k, n = y0.shape[:2]
        ratio = (model.ghosts(y0).reshape(k, -1, *y0.shape[-2:]).std(dim=(-2, -1), keepdim=True)
                 / y0[:, model.source_index].std(dim=(-2, -1), keepdim=True))
    plain = model.ghosts

    def ghosts(y):
        kk, nn = y.shape[:2]
        g = plain(y).reshape(kk, -1, *y.shape[-2:])
        src = y[:, model.source_index]
        g = g * (ratio * src.std(dim=(-2, -1), keepdim=True) / (g.std(dim=(-2, -1), keepdim=True) + 1e-8))
        return g.reshape(kk, nn, nn - 1, *y.shape[-2:])

    model.ghosts = ghosts


def _seed_suffix(seed: int) -> str:
    return f"_s{seed}" if seed else ""


def _split_sizes(variant: str) -> tuple:
    """(low-pass size, high-pass size) of a variant named ``lp<A>hp<B>`` (band-constrained kernels), else ()."""
    m = re.fullmatch(r"lp(\d+)hp(\d+)", variant)
    return (int(m.group(1)), int(m.group(2))) if m else ()


def variant_options(variant: str, wide_size: int = 25) -> dict:
    """SeparationOptions of a variant; components joined by ``+`` combine (e.g. ``anchor+lp25hp7``)."""
    opts: dict = {}
    for part in variant.split("+"):
        sizes, ramp = _split_sizes(part), re.fullmatch(r"ramp(\d+)", part)
        anchor = re.fullmatch(r"anchor([\d.]*)", part)
        if part in ("band", "wideband") or sizes:
            opts["band_constraint"] = True
        if part in ("wide", "wideband") or sizes:
            opts["kernel_size"] = sizes or wide_size
        if ramp:
            opts["gamma_ramp"] = float(ramp.group(1))
        if anchor:
            opts["exclusion_input"] = float(anchor.group(1) or 1.0)
        coarse = re.fullmatch(r"ranchor([\d.]+)s(\d)", part)
        if coarse:  # exclusion_coarse = W from scale level L on ("reverse anchor"; section 11)
            opts["exclusion_coarse"], opts["exclusion_coarse_from"] = float(coarse.group(1)), int(coarse.group(2))
        scales = re.fullmatch(r"ascales(\d+)", part)
        if scales:  # input-anchored exclusion over this many scales (1, 2, 4, ... px)
            opts["exclusion_input_scales"] = int(scales.group(1))
        opened = re.fullmatch(r"open(\d+)", part) or re.fullmatch(r"switch([\d.]+)", part)
        if opened and "kernel_size" not in opts:  # high-pass kernel 25 x 25, its outer ring shut until epoch N
            opts["kernel_size"] = (7, wide_size)
        blur = re.fullmatch(r"lpblur([\d.]+)", part)
        if blur:  # shallow-DIP filters: a fixed Gaussian blur after each low-pass filter (section 13)
            opts["filter_blur"] = float(blur.group(1))
        if part == "noanchor":  # the default before the input-anchored exclusion (the "default" rows up to round 4)
            opts["exclusion_input"] = 0.0
    return opts


DOG_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _dog_projector(fit, torch):
    """Projection of the high-pass kernels onto the span of isotropic difference-of-Gaussian bands
    G(s_b) - G(s_{b+1}) (s = DOG_SIGMAS px, G(0) = identity), each truncated to the kernel support and made
    zero-sum; applied after every Adam step (variant ``dog``). Returns a no-argument callable, or None."""
    m = fit.model
    kern = getattr(m, "kernels", None)
    if kern is None:
        return None
    s = kern.shape[-1]
    r = torch.arange(s, dtype=torch.float64) - s // 2
    rr = r[:, None] ** 2 + r[None, :] ** 2

    def g(sig):
        if sig == 0:
            return (rr == 0).double()
        e = torch.exp(-rr / (2 * sig**2))
        return e / e.sum()

    basis = torch.stack([(g(a) - g(b)).flatten() for a, b in zip(DOG_SIGMAS[:-1], DOG_SIGMAS[1:])], 1)
    basis = basis - basis.mean(0, keepdim=True)
    proj = (basis @ torch.linalg.pinv(basis)).to(kern.dtype)
    hp = m.highpass.reshape(-1).bool()

    def project():
        with torch.no_grad():
            k = kern[hp]
            kern[hp] = (k.reshape(k.shape[0], -1) @ proj.T).reshape(k.shape)

    project()
    return project


def _late_opening(fit, epoch_open, torch, threshold: float = 0.0, inputs=None, warm: bool = False,
                  ring_only: bool = False):
    """Variant ``open<N>``: the high-pass kernels (``kernel_size=(7, 25)``) keep the paper's 7x7 support until epoch
    ``epoch_open`` (their outer ring is masked: zero, no gradient, no Adam moments), so the fit up to there is the
    default one. From then on the full support is free, and each high-pass kernel is projected to zero sum after
    every Adam step (a high-pass ghost has no DC). The idea: a wide high-pass filter applied to the DIP's early,
    smooth y_1 opens the mixed solution (section 7); opened once y_1 holds slice 1, it can only take up the part of
    a wide ghost (blend G3) that y_2 otherwise absorbs. Returns a callable ``hook(epoch)`` to run after every step."""
    m = fit.model
    if getattr(m, "kernel_mask", None) is None:
        return None
    hp = m.highpass.reshape(-1).bool()
    size = m.kernels.shape[-1]
    lo = (size - 7) // 2
    inner = torch.zeros_like(m.kernel_mask[hp])
    inner[..., lo : lo + 7, lo : lo + 7] = 1.0
    m.kernel_mask[hp] = inner

    state = {"open": epoch_open}

    def hook(epoch: int, out=None) -> None:
        if state["open"] is None:  # variant switch<T>: open when slice 1's truth-free estimate drops below T
            if (epoch + 1) < SWITCH_FROM or (epoch + 1) % SWITCH_EVERY or out is None:
                return
            if _slice1_estimate(out["y"][0].detach().numpy().astype(np.float64), inputs) >= threshold:
                return
            state["open"] = epoch + 1
        if epoch + 1 < state["open"]:
            return
        with torch.no_grad():
            if epoch + 1 == state["open"]:
                m.kernel_mask[hp] = 1.0
                adam = fit.optim.state.get(m.kernels, {})
                if warm and "exp_avg_sq" in adam:  # the opened ring's steps normalised like the inner 7x7's
                    v, ring = adam["exp_avg_sq"], inner[0] == 0
                    for q in hp.nonzero().reshape(-1).tolist():
                        v[q][ring] = v[q][~ring].mean()
            k = m.kernels[hp]
            if ring_only:  # only the opened ring is kept zero-sum: the inner 7x7 stays free, as in the default
                ring = (inner == 0).to(k.dtype)
                m.kernels[hp] = k - ring * (k * ring).sum(dim=(-2, -1), keepdim=True) / ring.sum(dim=(-2, -1),
                                                                                                 keepdim=True)
            else:
                m.kernels[hp] = k - k.mean(dim=(-2, -1), keepdim=True)

    hook.state = state
    return hook


SWITCH_FROM, SWITCH_EVERY = 200, 50
"""Variant ``switch<T>`` checks slice 1's estimate every SWITCH_EVERY epochs from epoch SWITCH_FROM on."""


def _slice1_estimate(y: np.ndarray, inputs: np.ndarray) -> float:
    """Truth-free plain crosstalk estimate of slice 1 (low-pass ghost) of the outputs ``y`` (2, H, W), matched to
    the inputs: how much of G(3 px) * I_2 the output of slice 1 still holds."""
    from ptycho_ddip.separation.metrics import correlation, crosstalk_regressors, explained_ratio

    c = np.array([[correlation(y[k], inputs[i]) for k in range(2)] for i in range(2)])
    y = y if c[0, 0] + c[1, 1] >= c[0, 1] + c[1, 0] else y[::-1]
    return explained_ratio(y[0], crosstalk_regressors(0, y, inputs, ("lowpass", "highpass")))


def _band_penalty(fit, weight: float, torch):
    """The band penalty on low-pass ghost filters, as a ``Fit.step`` penalty: weight * relu(r - 1)^2 summed over the
    low-pass pairs, r = HF amplitude of f_ij(y_j) / HF amplitude of y_j (HF = x - G(1 px) x). A low-pass ghost
    cannot carry more high frequency than its source; the shallow-DIP filters were measured at r = 29-48."""
    import torch.nn.functional as F

    x = torch.arange(-3.0, 4.0, dtype=fit.target.dtype)
    g1 = torch.exp(-x**2 / 2.0)
    g2 = (g1[:, None] * g1[None, :]) / (g1.sum() ** 2)
    kern = g2[None, None]

    def hf(a):  # (M, H, W) -> (M,)
        b = F.conv2d(F.pad(a[:, None], (3, 3, 3, 3), mode="reflect"), kern)[:, 0]
        return (a - b).std(dim=(-2, -1))

    def penalty(out):
        y, g = out["y"], out["ghosts"]
        k, n = y.shape[:2]
        pen = y.new_zeros(k)
        for i in (i for i in range(n) if fit.model.ghost_kinds[i] == "lowpass"):
            for q, j in enumerate([j for j in range(n) if j != i]):
                pen = pen + torch.relu(hf(g[:, i, q]) / (hf(y[:, j]) + 1e-8) - 1.0) ** 2
        return weight * pen

    return penalty


def fit_and_record(job: dict) -> tuple:
    import torch

    torch.set_num_threads(1)
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import Fit, normalize_jointly

    f1, f2, alpha, _ = BLENDS[job["blend"]]
    ph = make_phantom(job["phantom"], (job["size"], job["size"]), seed=job["seed"])
    b = blend(ph.normalized(), alpha=alpha, filters=(f1, f2))
    opts = SeparationOptions(filters=job["filters"], epochs=job["epochs"], seed=job["seed"], threads=1,
                             mixing="learn", **variant_options(job["variant"], job["wide_size"]))
    target, _ = normalize_jointly(b.inputs)
    fit = Fit(target, opts, [opts.seed], torch.device("cpu"))
    penalty = _band_penalty(fit, job["band_penalty"], torch) if job["variant"] == "bandpen" else None
    dog = _dog_projector(fit, torch) if "dog" in job["variant"].split("+") else None
    opened = [int(p[4:]) for p in job["variant"].split("+") if re.fullmatch(r"open\d+", p)]
    switch = [float(p[6:]) for p in job["variant"].split("+") if re.fullmatch(r"switch[\d.]+", p)]
    warm, ring = ("warm" in job["variant"].split("+")), ("ring" in job["variant"].split("+"))
    late = (_late_opening(fit, opened[0], torch, warm=warm, ring_only=ring) if opened
            else _late_opening(fit, None, torch, switch[0], b.inputs, warm, ring) if switch else None)
    ys, gs, als, eps = [], [], [], []
    t0 = time.perf_counter()
    for epoch in range(opts.epochs + 1):
        if job["variant"] == "lock" and epoch == job["lock_epoch"]:
            _lock_mixing(fit.model, torch)
        if epoch < opts.epochs:
            out, _ = fit.step(epoch, penalty)  # outputs of the state after `epoch` steps
            if dog is not None:
                dog()
            if late is not None:
                late(epoch, out)
        else:
            with torch.no_grad():
                out = fit.model()
        if epoch > 0 and epoch % job["every"] == 0:
            ys.append(out["y"][0].detach().numpy().astype(np.float64))
            gs.append(out["ghosts"][0, :, 0].detach().numpy().astype(np.float64))
            als.append(out["alpha"][0].detach().numpy().astype(np.float64))
            eps.append(epoch)
    name = f"{job['phantom']}_{job['blend']}_{job['filters']}_{job['variant']}{_seed_suffix(job['seed'])}"
    np.savez_compressed(os.path.join(job["out"], name + ".npz"), y=np.array(ys), g=np.array(gs),
                        alpha=np.array(als), epoch=np.array(eps), truth=b.truth, ghosts=b.ghosts, inputs=b.inputs,
                        opened=-1 if late is None or late.state["open"] is None else late.state["open"])
    return name, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------- analysis

def lsfilter_r2(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """Fraction of the variance of ``a`` explained by the best k x k linear filter of ``b`` (plus a constant)."""
    r = k // 2
    h, w = a.shape
    cols = [np.roll(b, (dy, dx), (0, 1))[r : h - r, r : w - r].ravel()
            for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    x = np.column_stack(cols + [np.ones(len(cols[0]))])
    t = a[r : h - r, r : w - r].ravel()
    coef, *_ = np.linalg.lstsq(x, t, rcond=None)
    return float(1.0 - (t - x @ coef).var() / t.var())


def analyze(path: str) -> dict:
    """Truth and truth-free signals per snapshot of one saved trajectory (two slices)."""
    from ptycho_ddip.separation.metrics import correlation, crosstalk_estimate, ghost_to_signal

    d = np.load(path)
    ys, gs, truth, gh, x = d["y"], d["g"], d["truth"], d["ghosts"], d["inputs"]
    n = 2
    rows = []
    for y, g in zip(ys, gs):
        c = np.array([[correlation(y[k], x[i]) for k in range(n)] for i in range(n)])
        perm = max(itertools.permutations(range(n)), key=lambda p: sum(c[i, p[i]] for i in range(n)))
        r = {}
        xt = crosstalk_estimate(y[list(perm)], x)
        xtp = crosstalk_estimate(y[list(perm)], x, partial=True)
        for i in range(n):
            p, q = perm[i], perm[1 - i]
            yi = y[p]
            band = gaussian_filter(y[q], 2.0) if i == 0 else y[q] - gaussian_filter(y[q], 1.5)
            r[f"gsr{i + 1}"] = ghost_to_signal(yi, truth[i], gh[i])
            r[f"corr{i + 1}"] = correlation(yi, truth[i])
            r[f"model_ghost{i + 1}"] = abs(correlation(yi, g[p]))
            r[f"band{i + 1}"] = abs(correlation(yi, band))
            r[f"lsfilter{i + 1}"] = lsfilter_r2(yi, y[q])
            r[f"crosstalk{i + 1}"] = xt[i]
            r[f"crosstalkp{i + 1}"] = xtp[i]
            r[f"slice{i + 1}"] = yi
        y2 = y[perm[1]]
        r["hf2"] = float((y2 - gaussian_filter(y2, 1.0)).var() / y2.var())
        rows.append(r)
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    cols["stable2"] = np.array([correlation(y2, cols["slice2"][-1]) for y2 in cols["slice2"]])
    del cols["slice1"], cols["slice2"]
    return {"name": os.path.basename(path)[:-4], "epoch": d["epoch"], "alpha": d["alpha"], **cols,
            "gsr_in": [ghost_to_signal(x[i], truth[i], gh[i]) for i in range(n)],
            "corr_in": [correlation(x[i], truth[i]) for i in range(n)]}


def passes(a: dict, t1: int, t2: int) -> bool:
    """The issue's criterion for slice 1 taken at snapshot t1 and slice 2 at snapshot t2."""
    g1, g2 = a["gsr1"][t1], a["gsr2"][t2]
    gin1, gin2 = a["gsr_in"]
    return bool(g2 <= 0.2 * gin2 and g2 <= max(1.5 * a["gsr2"].min(), 0.05 * gin2) and g1 <= gin1)


def report(analyses: list, min_epoch: int = 100) -> tuple:
    from ptycho_ddip.separation.select import best_candidate

    lines = ["| run | GSR2 in | GSR2 final | GSR2 best (epoch) | corr2 in/final | GSR1 in | GSR1 final | "
             "corr1 in/final | alphas | passes |", "|" + "---|" * 10]
    sel_lines = ["| run | final | " + " | ".join(f"min {r}" for r in RULES) + " | "
                 + " | ".join(f"slice 2 at {e}" for e in FIXED_EPOCHS)
                 + " | slice 2 by crosstalk, guarded | slice 2 by partial crosstalk, guarded "
                 "| slice 2 by rank sum, guarded |",
                 "|" + "---|" * (5 + len(RULES) + len(FIXED_EPOCHS))]
    totals = {"final": 0, **{r: 0 for r in RULES}, **{f"at{e}": 0 for e in FIXED_EPOCHS}, "crosstalk2": 0,
              "crosstalkp2": 0, "crosstalkr2": 0}
    corr2 = {"final": [], "crosstalk2": [], "crosstalkp2": [], "crosstalkr2": []}
    summary = []
    for a in analyses:
        ep, last = a["epoch"], len(a["epoch"]) - 1
        b = int(a["gsr2"].argmin())
        ok = passes(a, last, last)
        totals["final"] += ok
        lines.append(f"| {a['name']} | {a['gsr_in'][1]:.3f} | {a['gsr2'][last]:.4f} | {a['gsr2'][b]:.4f} ({ep[b]}) | "
                     f"{a['corr_in'][1]:.3f}/{a['corr2'][last]:.3f} | {a['gsr_in'][0]:.3f} | {a['gsr1'][last]:.3f} | "
                     f"{a['corr_in'][0]:.3f}/{a['corr1'][last]:.3f} | "
                     f"{a['alpha'][last][0]:.2f}/{a['alpha'][last][1]:.2f} | {'yes' if ok else 'NO'} |")
        cells = [f"{a['gsr1'][last]:.3f} / {a['gsr2'][last]:.4f} {'Y' if ok else 'n'}"]
        row = {"name": a["name"], "final": ok}
        for rule in RULES:
            t = []
            for i in (1, 2):
                v = np.where(ep >= min_epoch, a[f"{rule}{i}"], np.inf)
                t.append(int(v.argmin()))
            ok_r = passes(a, *t)
            totals[rule] += ok_r
            row[rule] = ok_r
            cells.append(f"{a['gsr1'][t[0]]:.3f}@{ep[t[0]]} / {a['gsr2'][t[1]]:.4f}@{ep[t[1]]} {'Y' if ok_r else 'n'}")
        for e in FIXED_EPOCHS:
            t2 = int(np.nonzero(ep == e)[0][0])
            ok_e = passes(a, last, t2)
            totals[f"at{e}"] += ok_e
            row[f"at{e}"] = ok_e
            cells.append(f"{a['gsr2'][t2]:.4f} (corr {a['corr2'][t2]:.3f}) {'Y' if ok_e else 'n'}")
        # slice 1 at the end, slice 2 at its smallest crosstalk estimate among the snapshots (epoch >= min_epoch)
        # whose slice 2 correlates >= GUARD with the final slice 2 (no ground truth used): with the plain estimate
        # (the rule of section 10), with the partial one (section 11) and by the sum of the two ranks, ties to the
        # smaller partial estimate (the product's rule since section 12)
        cand = np.nonzero((ep >= min_epoch) & (a["stable2"] >= GUARD))[0]
        for key, rule in (("crosstalk2", "plain"), ("crosstalkp2", "partial"), ("crosstalkr2", "rank")):
            t2 = int(cand[best_candidate(rule, a["crosstalkp2"][cand], a["crosstalk2"][cand])])
            ok_x = passes(a, last, t2)
            totals[key] += ok_x
            row[key] = ok_x
            corr2[key].append(a["corr2"][t2])
            cells.append(f"{a['gsr2'][t2]:.4f}@{ep[t2]} (corr {a['corr2'][t2]:.3f}) {'Y' if ok_x else 'n'}")
        corr2["final"].append(a["corr2"][last])
        sel_lines.append(f"| {a['name']} | " + " | ".join(cells) + " |")
        summary.append(row)
    sel_lines.append("| **passes** | " + " | ".join(str(totals[k]) for k in totals) + " |")
    sel_lines.append(f"\nMean corr2 over {len(analyses)} runs: final {np.mean(corr2['final']):.3f}, slice 2 by "
                     f"crosstalk (guard {GUARD}) {np.mean(corr2['crosstalk2']):.3f}, by partial crosstalk "
                     f"{np.mean(corr2['crosstalkp2']):.3f}, by rank sum {np.mean(corr2['crosstalkr2']):.3f}.")
    final = {k: np.array([a[k][-1] for a in analyses]) for k in ("corr1", "corr2", "gsr1", "gsr2")}
    lines.append(f"| **mean corr / geometric-mean GSR over {len(analyses)} runs** | | "
                 f"{np.exp(np.log(final['gsr2']).mean()):.4f} | | {final['corr2'].mean():.3f} | | "
                 f"{np.exp(np.log(final['gsr1']).mean()):.3f} | {final['corr1'].mean():.3f} | | {totals['final']} |")
    return "\n".join(lines), "\n".join(sel_lines), summary


def compare(out: str, variants: list, filters: str = "kernel") -> str:
    """Markdown table of every (variant, seed) whose trajectories are saved in ``out``: geometric-mean GSR and mean
    correlation of both slices at the end, passes of the issue's criterion, and slice-1 regressions (final GSR1 above
    the input's), plus per-variant totals over the seeds. Only seeds for which every variant has all its runs are
    used, so the rows compare the same blends."""
    runs: dict = {}
    for v in variants:
        for path in glob.glob(os.path.join(out, f"*_{filters}_{v}.npz")) + glob.glob(
                os.path.join(out, f"*_{filters}_{v}_s*.npz")):
            m = re.fullmatch(rf"(.+)_{filters}_{re.escape(v)}(?:_s(\d+))?\.npz", os.path.basename(path))
            if m:
                runs.setdefault((v, int(m.group(2) or 0)), []).append(path)
    seeds = sorted({sd for (_, sd) in runs})
    counts = {sd: {len(runs.get((v, sd), [])) for v in variants} for sd in seeds}
    seeds = [sd for sd in seeds if len(counts[sd]) == 1 and 0 not in counts[sd]]
    lines = [f"| variant | seed | blends | geo-mean GSR1 | mean corr1 | geo-mean GSR2 | mean corr2 | passes | "
             f"slice 1 worse than input |", "|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        allf: dict = {k: [] for k in ("gsr1", "corr1", "gsr2", "corr2")}
        npass = nworse = nrun = 0
        for sd in seeds:
            an = [analyze(p) for p in sorted(runs[(v, sd)])]
            f = {k: np.array([a[k][-1] for a in an]) for k in allf}
            ps = sum(passes(a, -1, -1) for a in an)
            worse = sum(bool(a["gsr1"][-1] > a["gsr_in"][0]) for a in an)
            for k in allf:
                allf[k].extend(f[k])
            npass, nworse, nrun = npass + ps, nworse + worse, nrun + len(an)
            lines.append(f"| {v} | {sd} | {len(an)} | {np.exp(np.log(f['gsr1']).mean()):.3f} | {f['corr1'].mean():.3f} "
                         f"| {np.exp(np.log(f['gsr2']).mean()):.4f} | {f['corr2'].mean():.3f} | {ps} | {worse} |")
        f = {k: np.array(x) for k, x in allf.items()}
        if nrun:
            lines.append(f"| **{v}** | all | {nrun} | **{np.exp(np.log(f['gsr1']).mean()):.3f}** | "
                         f"**{f['corr1'].mean():.3f}** | **{np.exp(np.log(f['gsr2']).mean()):.4f}** | "
                         f"**{f['corr2'].mean():.3f}** | **{npass}** | **{nworse}** |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantoms", default="au-nio,zp-nio")
    ap.add_argument("--blends", default=",".join(BLENDS))
    ap.add_argument("--filters", default="kernel,dip")
    ap.add_argument("--variants", default="default",
                    help="default, band (band_constraint=True), bandpen, wide, wideband, lp<A>hp<B>, ramp<K>, anchor<W>, "
                         "ascales<N>, ranchor<W>s<L>, dog, open<N>, switch<T> (+warm, +ring), lpblur<S> "
                         "and/or lock; join with + to combine (anchor+lp25hp7)")
    ap.add_argument("--lock-epoch", type=int, default=200)
    ap.add_argument("--band-penalty", type=float, default=0.01, help="weight of the bandpen variant's penalty")
    ap.add_argument("--wide-size", type=int, default=25, help="kernel support of the wide variant (px)")
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="signals_out")
    ap.add_argument("--analyze-only", action="store_true")
    ap.add_argument("--compare", action="store_true",
                    help="only print the variants x seeds summary of the trajectories saved in OUT (--variants, "
                         "--filters: one filter type)")
    ap.add_argument("--filmstrips", action="store_true", help="also draw OUT/<run>_snapshots.png for every run")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.compare:
        print(compare(args.out, args.variants.split(","), args.filters))
        return
    if not args.analyze_only:
        jobs = [dict(phantom=p, blend=bl, filters=f, variant=v, epochs=args.epochs, every=args.every,
                     size=args.size, seed=args.seed, lock_epoch=args.lock_epoch, out=args.out,
                     band_penalty=args.band_penalty, wide_size=args.wide_size)
                for v in args.variants.split(",") for f in args.filters.split(",")
                for p in args.phantoms.split(",") for bl in args.blends.split(",")]
        with ProcessPoolExecutor(max_workers=args.workers) as ex:
            for name, dt in ex.map(fit_and_record, jobs):
                print(f"{name}: {dt:.0f} s", flush=True)
    for variant in args.variants.split(","):
        tag = f"{variant}{_seed_suffix(args.seed)}"
        paths = sorted(glob.glob(os.path.join(args.out, f"*_{tag}.npz")))
        if not paths:
            continue
        outcome, selection, summary = report([analyze(p) for p in paths])
        if args.filmstrips:
            from ptycho_ddip.plotting import snapshot_figure

            for p in paths:
                d = np.load(p)
                snapshot_figure(d["y"], d["epoch"], path=p[:-4] + "_snapshots.png")
        md = (f"## variant {variant}, seed {args.seed}\n\nFinal iterate (issue criterion):\n\n{outcome}\n\n"
              f"Selection rules (slice 1 / slice 2 GSR at the selected epochs):\n\n{selection}\n")
        print(md)
        with open(os.path.join(args.out, f"trajectory_signals_{tag}.md"), "w") as fh:
            fh.write(md)
        with open(os.path.join(args.out, f"trajectory_signals_{tag}.json"), "w") as fh:
            json.dump(summary, fh, indent=1)


if __name__ == "__main__":
    main()
