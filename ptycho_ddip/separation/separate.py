"""The DDIP fitting loop: normalisation, Adam with step decay, progress, checkpoint/resume, ensembles, monitoring.

Units. Inputs are normalised jointly for fitting (z-score over all slices, then min-max to [0, 1]). The networks'
clean images y_i live in that normalised space (``SeparationResult.normalized``). ``SeparationResult.separated``
maps each y_i back to the input's units by the least-squares affine fit of y_i to its input I_i: the part of the
input explained by slice i's own signal, with the ghost removed. The final iterate is returned (not the original
code's best-PSNR iterate; see the README).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from .._version import __version__
from ..atomic import atomic_write
from ..progress import progress_bar
from ..runtime import configure_threads, resolve_device
from .batched import build_model
from .fixed import FixedMixingDIP
from .losses import exclusion_all_pairs, exclusion_pairs, mismatch
from .metrics import correlation, ghost_to_signal, gradient_correlation
from .mixing import Mixing, estimate_mixing
from .model import default_ghost_kinds
from .options import ESTIMATE_EXCLUSION, SeparationOptions
from .select import select_iterates, selected_slices

LOSS_COLUMNS = ("epoch", "total", "mismatch", "exclusion", "weight")
MIN_SIZE = 32  # the 5-scale exclusion loss pools 4 times: 32 px leaves 2 px at the coarsest scale


@dataclass
class SeparationResult:
    """Outputs of :func:`separate` (arrays are numpy, float64 unless noted).

    inputs : (N, H, W) the input images, input units.
    separated : (N, H, W) clean slices in input units (ensemble: the members' mean).
    normalized : (N, H, W) the networks' clean images y in the normalised fitting space, [0, 1] (ensemble: mean).
    alpha : (N,) final blending weights (paper convention for N = 2); ensembles: (K, N).
    filters : learned filters of the (first) member, name -> array.
    loss : (n_epochs, 5) epoch, total, mismatch, exclusion, weight (first member).
    config : every option, the seed, the package version.
    std : (N, H, W) per-pixel standard deviation over ensemble members (input units), None for one member.
    members : (K, N, H, W) each member's separated slices, None for one member.
    monitor : (n_rows, columns) ground-truth trajectory (when truth was given), ``monitor_columns`` names them.
    snapshots : (n_snapshots, N, H, W) the clean slices of the first member every ``snapshot_every`` epochs and at
        the end, matched to the inputs and mapped to input units like ``separated``; ``snapshot_epochs`` their epochs.
    ghost_estimate : (N, H, W) the fitted model's ghost part of each input, input units (ensemble: mean): the
        terms of the synthesis made from the other slices' networks, (1 - w_i)/(N - 1) sum_j f_ij(y_j).
        ``ghost_removed = inputs - ghost_estimate`` keeps every detail of the input that the model does not
        attribute to another slice (its own signal, and noise); ``separated`` is the network's image of the slice.
    """

    inputs: np.ndarray
    separated: np.ndarray
    normalized: np.ndarray
    alpha: np.ndarray
    filters: dict
    loss: np.ndarray
    config: dict
    std: Optional[np.ndarray] = None
    members: Optional[np.ndarray] = None
    monitor: Optional[np.ndarray] = None
    monitor_columns: tuple = ()
    ghost_estimate: Optional[np.ndarray] = None
    snapshots: Optional[np.ndarray] = None
    snapshot_epochs: Optional[np.ndarray] = None

    @property
    def mean(self) -> np.ndarray:
        return self.separated

    @property
    def ghost_removed(self) -> Optional[np.ndarray]:
        """The inputs minus the model's ghost estimate (input units), or None without an estimate."""
        return None if self.ghost_estimate is None else self.inputs - self.ghost_estimate

    def to_dict(self) -> dict:
        """The layout :func:`ptycho_ddip.io.write_separation_result` writes."""
        extra = {"normalized": self.normalized}
        if self.ghost_estimate is not None:
            extra["ghost_estimate"] = self.ghost_estimate
            extra["ghost_removed"] = self.ghost_removed
        if self.members is not None:
            extra["members"] = self.members
        if self.snapshots is not None:
            extra["snapshots"], extra["snapshot_epochs"] = self.snapshots, self.snapshot_epochs
        d = {"inputs": self.inputs, "separated": self.separated, "alpha": self.alpha, "filters": self.filters,
             "loss": self.loss, "config": self.config, "version": __version__, "seed": self.config["seed"],
             "extra": extra}
        if self.std is not None:
            d["mean"], d["std"] = self.separated, self.std
        if self.monitor is not None:
            d["monitor"], d["monitor_columns"] = self.monitor, list(self.monitor_columns)
        return d


# ----------------------------------------------------------------------------------------------- helpers

def normalize_jointly(images: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Joint z-score then joint min-max to [0, 1]; returns the images and (mean, std, min, max) to undo it."""
    x = np.asarray(images, dtype=np.float64)
    mu, sd = float(x.mean()), float(x.std())
    if not sd > 0:
        raise ValueError("all input images are constant together; nothing to separate")
    z = (x - mu) / sd
    lo, hi = float(z.min()), float(z.max())
    return (z - lo) / (hi - lo), (mu, sd, lo, hi)


def to_input_units(y: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Affine least-squares map of each y_i onto its input I_i (see module docstring)."""
    out = np.empty_like(np.asarray(inputs, dtype=np.float64))
    for i in range(y.shape[0]):
        a = np.stack([y[i].ravel(), np.ones(y[i].size)], axis=1)
        coef, *_ = np.linalg.lstsq(a, inputs[i].ravel(), rcond=None)
        out[i] = coef[0] * y[i] + coef[1]
    return out


#: inputs that correlate this well (in absolute value) are refused as copies of one slice
IDENTICAL_CORRELATION = 0.999


def validate_images(images: np.ndarray, name: str = "input") -> np.ndarray:
    """Check an (N, H, W) real stack for the engine; raise ValueError saying what is wrong and how to fix it."""
    x = np.asarray(images)
    if np.iscomplexobj(x):
        raise ValueError(f"{name}: complex images; pass their phase or magnitude (np.angle / np.abs, --part)")
    if x.ndim != 3:
        raise ValueError(f"{name}: need a stack of 2-D images (N, H, W), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 slices to separate, got {x.shape[0]}")
    if min(x.shape[1:]) < MIN_SIZE:
        raise ValueError(f"{name}: images are {x.shape[1]}x{x.shape[2]}; the network needs at least "
                         f"{MIN_SIZE}x{MIN_SIZE} (pad or resample the images)")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argwhere(bad.reshape(x.shape[0], -1).any(1))[0, 0])
        raise ValueError(f"{name}: slice {i} has {int(bad[i].sum())} NaN/Inf pixels; fix or inpaint them first")
    for i in range(x.shape[0]):
        if np.ptp(x[i]) == 0:
            raise ValueError(f"{name}: slice {i} is constant ({x[i].flat[0]}); nothing to separate")
    corr = np.corrcoef(x.reshape(x.shape[0], -1))
    for i in range(x.shape[0]):
        for j in range(i + 1, x.shape[0]):
            if abs(corr[i, j]) >= IDENTICAL_CORRELATION:
                raise ValueError(f"{name}: slices {i} and {j} are nearly identical (correlation {corr[i, j]:.5f}); "
                                 f"their split cannot be determined. Check that the inputs are different slices")
    return x


def _atomic_torch_save(obj: dict, path: str) -> None:
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(obj, tmp)


#: version of the checkpoint layout and of the options it records; a checkpoint of another format is refused
CHECKPOINT_FORMAT = 2
#: options that may change between a run and its resumption (they do not change the fit)
_RESUME_IGNORED = ("epochs", "resume", "checkpoint_every", "checkpoint_path", "experimental.log_every", "device",
                   "threads", "monitor_every")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_checkpoint(checkpoint: dict, config: dict, path: str) -> None:
    """Refuse a checkpoint of another format, or one written with options that change the fit."""
    fmt = checkpoint.get("format", 1)
    if fmt != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint of format {fmt}, written by another version of ptycho_ddip (this one "
                         f"reads format {CHECKPOINT_FORMAT}); delete it or run without --resume")
    old, new = _flat(checkpoint["config"]), _flat(config)
    if any(old.get(k) != new.get(k) for k in set(old) | set(new) if k not in _RESUME_IGNORED):
        raise ValueError(f"{path}: checkpoint was written with different options; remove it or run without --resume")


# ----------------------------------------------------------------------------------------------- one member

@dataclass
class _MemberOutput:
    y: np.ndarray
    alpha: np.ndarray
    filters: dict
    loss: np.ndarray
    monitor: list = field(default_factory=list)
    permutation: tuple = ()
    foreign: Optional[np.ndarray] = None  # (N, H, W) the model's ghost part of each input, normalised units
    snapshots: list = field(default_factory=list)  # [(epoch, (N, H, W) y matched to the inputs)], first member
    selected_epochs: Optional[np.ndarray] = None  # (N,) the epoch each returned slice comes from (select option)
    mixing: Optional[dict] = None  # the estimated mixing (Mixing.to_dict()), method="estimate" only


def synthesis_components(out: dict, ghosts: torch.Tensor) -> torch.Tensor:
    """The model's decomposition of each synthesised input: (K, N_input, N_slot, H, W), where [k, i, i] is the own
    term w_i y_i and [k, i, j] the ghost term (1 - w_i)/(N - 1) f_ij(y_j); summed over slots it is ``synth``."""
    y, own = out["y"], out["own"]
    k, n, h, w = y.shape
    comps = y.new_zeros(k, n, n, h, w)
    for i in range(n):
        comps[:, i, i] = own[:, i, None, None] * y[:, i]
        others = [j for j in range(n) if j != i]
        for q, j in enumerate(others):
            comps[:, i, j] = ((1.0 - own[:, i]) / (n - 1))[:, None, None] * ghosts[:, i, q]
    return comps


def input_anchor_pairs(ghost_kinds: Sequence[str]) -> tuple:
    """(slices, inputs) index lists of the input-anchored exclusion: every slice that receives a high-pass ghost
    paired with the input of every slice that receives a low-pass ghost."""
    pairs = [(i, j) for i, ki in enumerate(ghost_kinds) for j, kj in enumerate(ghost_kinds)
             if ki == "highpass" and kj == "lowpass"]
    return [i for i, _ in pairs], [j for _, j in pairs]


def exclusion_form(opts: SeparationOptions) -> dict:
    """How the exclusion loss is computed: ``balance`` (gradient-balanced), ``input_weight`` and ``input_scales``
    (the input anchor, relative to gamma_excl): fixed for ``method="estimate"`` (:data:`ESTIMATE_EXCLUSION`), the
    ``learned`` settings for ``method="paper"``."""
    if opts.method == "estimate":
        return ESTIMATE_EXCLUSION
    lo = opts.learned
    return {"balance": lo.exclusion_balance, "input_weight": lo.exclusion_input,
            "input_scales": lo.exclusion_input_scales}


def input_anchor(target: torch.Tensor, opts: SeparationOptions) -> Optional[tuple]:
    """(slice indices, (1, P, H, W) anchor inputs) of the input-anchored exclusion on ``target`` (1, N, H, W), or
    None when it is off or no slice pair qualifies; computed once per fit."""
    hp, lp = input_anchor_pairs(opts.ghost_kinds or default_ghost_kinds(target.shape[1]))
    return (hp, target[:, lp].contiguous()) if exclusion_form(opts)["input_weight"] > 0 and hp else None


def _member_losses(model, out: dict, target: torch.Tensor, opts: SeparationOptions, epoch: int,
                   pairs: tuple, anchor: Optional[tuple] = None) -> tuple:
    """(mismatch, exclusion, weight) per member, each (K,). Fused on the fast path, the reference loss functions
    member by member on the plain path. With the estimated mixing the mismatch is that of each slice Y_i to its own
    unmixed slice (M^-1 I)_i. A zero exclusion weight (``gamma_excl=0``, the
    estimated mixing's default) skips the exclusion terms altogether (their column is then 0)."""
    y = out["y"]
    k = y.shape[0]
    form = exclusion_form(opts)
    bal, fast = form["balance"], opts.experimental.fast
    if opts.method == "estimate":
        per_slice = _slice_mismatch(out, model.unmixed)
        out["slice_mismatch"] = per_slice.detach()  # reused by select="loss" (_track_best)
        mis = per_slice.sum(dim=1)
    elif fast:
        mis = (out["synth"] - target).pow(2).mean(dim=(-2, -1)).sum(dim=1)
    else:
        mis = torch.stack([mismatch(out["synth"][m], target[0]) for m in range(k)])
    if opts.gamma_excl == 0:
        exc = torch.zeros_like(mis)
    elif fast:
        exc = exclusion_pairs(y[:, pairs[0]], y[:, pairs[1]], balance=bal)
    else:
        exc = torch.stack([exclusion_all_pairs(y[m][:, None], balance=bal) for m in range(k)])
    if anchor is not None and opts.gamma_excl != 0:
        hp, images = anchor
        exc = exc + form["input_weight"] * exclusion_pairs(y[:, hp], images.expand(k, -1, -1, -1),
                                                           scales=form["input_scales"], balance=bal)
    if opts.method == "paper" and epoch < opts.learned.weight_reg_epochs:
        reg = opts.learned.weight_reg * (out["alpha"] - 0.5).pow(2).sum(dim=1)
    else:
        reg = torch.zeros_like(mis)
    return mis, exc, reg


def make_schedule(optim: torch.optim.Optimizer, opts: SeparationOptions):
    """The paper's learning-rate schedule: x ``lr_decay`` every ``lr_step`` epochs."""
    x = opts.experimental
    return torch.optim.lr_scheduler.StepLR(optim, step_size=x.lr_step, gamma=x.lr_decay)


class Fit:
    """Model, optimiser and schedule of members ``seeds`` on normalised images ``target_np`` (N, H, W).

    With ``opts.method == "estimate"`` the model is a :class:`~.fixed.FixedMixingDIP` on ``mixing`` (estimated here
    when not given); otherwise the DDIP model with learnable mixing (fast or plain path).

    ``step(epoch)`` runs one Adam step of every member and returns the model outputs (before the step) and a (K, 4)
    tensor of total, mismatch, exclusion and weight losses, left on the device (no host sync). ``penalty``, if
    given, maps the model outputs to an extra (K,) loss added to the total (for experiments, e.g. the demos).
    """

    def __init__(self, target_np: np.ndarray, opts: SeparationOptions, seeds: Sequence[int], device: torch.device,
                 mixing: Optional[Mixing] = None):
        n, h, w = target_np.shape
        self.opts = opts
        self.dtype = getattr(torch, opts.dtype)
        self.mixing = None
        x = opts.experimental
        if opts.method == "estimate":
            self.mixing = mixing if mixing is not None else estimate_target_mixing(target_np, opts)
            model = FixedMixingDIP(target_np, self.mixing, seeds, channels=x.channels, skip_channels=x.skip_channels,
                                   noise_scale=x.noise_scale, channels_last=x.fast)
        else:
            model = build_model(n, (h, w), seeds, fast=x.fast, filters=opts.learned.filters,
                                ghost_kinds=opts.ghost_kinds, channels=x.channels, skip_channels=x.skip_channels,
                                noise_scale=x.noise_scale, filter_sigmoid=x.filter_sigmoid)
        self.model = model.to(device=device, dtype=self.dtype)
        self.target = torch.as_tensor(target_np, dtype=self.dtype, device=device)[None]
        fused = x.fast and device.type in ("cpu", "cuda")
        self.optim = torch.optim.Adam(self.model.parameters(), lr=opts.lr, fused=fused or None)
        self.sched = make_schedule(self.optim, opts)
        self.pairs = ([i for i in range(n) for j in range(i + 1, n)], [j for i in range(n) for j in range(i + 1, n)])
        self.anchor = input_anchor(self.target, opts)

    def step(self, epoch: int, penalty: Optional[Callable] = None) -> tuple:
        out = self.model()
        with record_function("ddip.losses"):
            mis, exc, reg = _member_losses(self.model, out, self.target, self.opts, epoch, self.pairs, self.anchor)
            per_member = mis + float(self.opts.gamma_excl) * exc + reg
            if penalty is not None:
                per_member = per_member + penalty(out)
        self.optim.zero_grad(set_to_none=True)
        with record_function("ddip.backward"):
            per_member.sum().backward()
        with record_function("ddip.adam"):
            self.optim.step()
            self.sched.step()
        return out, torch.stack([per_member, mis, exc, reg], dim=1).detach()


def estimate_target_mixing(target_np: np.ndarray, opts: SeparationOptions, progress: bool = False) -> Mixing:
    """The mixing of normalised images ``target_np`` (N, H, W) estimated with ``opts``' settings (CPU, float64)."""
    kinds = opts.ghost_kinds or default_ghost_kinds(target_np.shape[0])
    e = opts.estimate
    return estimate_mixing(target_np, kinds, e.sigmas_px, e.iters, e.lr, blur_px=e.blur_px, progress=progress)


def _fit_group(target_np: np.ndarray, opts: SeparationOptions, member_ids: Sequence[int], device: torch.device,
               truth: Optional[np.ndarray], ghosts: Optional[np.ndarray], progress: bool,
               checkpoint_path: Optional[str], desc: str, callback: Optional[Callable],
               mixing: Optional[Mixing] = None) -> list:
    """Fit ensemble members ``member_ids`` (seeds ``opts.seed + id``) together; one _MemberOutput per member."""
    n, h, w = target_np.shape
    seeds = [opts.seed + int(m) for m in member_ids]
    k = len(seeds)
    fit = Fit(target_np, opts, seeds, device, mixing)
    model, optim, sched = fit.model, fit.optim, fit.sched
    history = torch.zeros(opts.epochs, k, 4, device=device, dtype=fit.dtype)
    monitor: list = [[] for _ in range(k)]
    snapshots: list = []  # of the batch's first member
    kinds = opts.ghost_kinds or default_ghost_kinds(n)
    sel = selected_slices(kinds) if opts.select == "crosstalk" else []
    kept: list = [[] for _ in range(k)]  # per member [(epoch, (S, H, W) float32 images of the `sel` slices)]
    # select="loss": per member and slice, the smallest own mismatch so far, its epoch and network image (on device)
    track = opts.select == "loss" and opts.epochs > 0
    best = ({"val": torch.full((k, n), float("inf"), device=device, dtype=fit.dtype),
             "epoch": torch.zeros((k, n), device=device, dtype=torch.long),
             "y": torch.zeros((k, n, h, w), device=device, dtype=fit.dtype)} if track else None)
    start = 0
    cfg = {**opts.to_dict(), "seeds": seeds}
    if checkpoint_path and opts.resume and os.path.exists(checkpoint_path):
        ck = torch.load(checkpoint_path, map_location=device, weights_only=False)
        check_checkpoint(ck, cfg, checkpoint_path)
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optim"])
        sched.load_state_dict(ck["sched"])
        start = int(ck["epoch"])
        done_k = min(start, opts.epochs)
        history[:done_k] = ck["history"][:done_k].to(device)
        monitor = [list(m) for m in ck["monitor"]]
        snapshots = list(ck.get("snapshots", []))
        kept = [list(m) for m in ck.get("kept", kept)]
        if track and ck.get("best") is not None:  # a checkpoint without it: the tracking restarts here
            best = {key: v.to(device) for key, v in ck["best"].items()}
    bar = progress_bar(opts.epochs, desc, progress, initial=start, dynamic_ncols=True)
    match = opts.experimental.match_inputs
    inputs = target_np if match else None
    for epoch in range(start, opts.epochs):
        out, history[epoch] = fit.step(epoch)
        done = epoch + 1
        if track:  # `out` is the state after `epoch` steps
            _track_best(best, out, model.unmixed, epoch)
        if truth is not None and epoch > 0 and epoch % opts.monitor_every == 0:
            # `out` is the state after `epoch` steps
            y_np, al_np = out["y"].detach().cpu().numpy(), out["alpha"].detach().cpu().numpy()
            for m in range(k):
                monitor[m].append(_monitor_row(epoch, y_np[m], al_np[m], truth, ghosts, inputs))
        if opts.snapshot_every and epoch > 0 and epoch % opts.snapshot_every == 0:
            snapshots.append(_snapshot(epoch, out["y"][0], target_np))
        if sel and epoch >= opts.learned.select_from and epoch % opts.learned.select_every == 0:
            y_host = out["y"].detach().cpu()  # one transfer for all members
            for m in range(k):
                _, y_m = _snapshot(epoch, y_host[m], inputs)
                kept[m].append((epoch, y_m[sel]))
        if done % opts.experimental.log_every == 0 or done == opts.epochs:
            vals = history[epoch, 0].tolist()
            al = out["alpha"][0].detach().cpu().numpy()
            bar.set_postfix(loss=f"{vals[0]:.3e}", mis=f"{vals[1]:.2e}", excl=f"{vals[2]:.2e}",
                            alpha="/".join(f"{a:.3f}" for a in al), refresh=False)
            bar.update(done - bar.n)
            if callback is not None:
                callback(done, vals, al)
        if checkpoint_path and opts.checkpoint_every and done % opts.checkpoint_every == 0:
            _atomic_torch_save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optim": optim.state_dict(),
                                "sched": sched.state_dict(), "epoch": done, "history": history[:done].cpu(),
                                "monitor": monitor, "snapshots": snapshots, "kept": kept, "config": cfg,
                                "best": {key: v.cpu() for key, v in best.items()} if track else None},
                               checkpoint_path)
    bar.close()
    with torch.no_grad():
        final = model.unmixed_outputs() if opts.epochs == 0 else model()
        y_last = final["y"].cpu().numpy().astype(np.float64)  # the final iterate (monitored at `epochs`)
        if track:
            _track_best(best, final, model.unmixed, opts.epochs)
            final = model.outputs(best["y"])
            best_epochs = best["epoch"].cpu().numpy()
    y_all = final["y"].cpu().numpy().astype(np.float64)
    al_all = final["alpha"].cpu().numpy().astype(np.float64)
    with torch.no_grad():
        if fit.mixing is not None:
            comps = model.components(final)
        else:
            comps = synthesis_components(final, final["ghosts"] if "ghosts" in final else model.ghosts(final["y"]))
    comps = comps.cpu().numpy().astype(np.float64)
    hist = history.cpu().numpy().astype(np.float64)
    if opts.snapshot_every and (not snapshots or snapshots[-1][0] < opts.epochs):
        snapshots.append(_snapshot(opts.epochs, final["y"][0], target_np))
    outs = []
    for m in range(k):
        if truth is not None and (not monitor[m] or monitor[m][-1][0] < opts.epochs):
            monitor[m].append(_monitor_row(opts.epochs, y_last[m], al_all[m], truth, ghosts, inputs))
        loss_table = np.column_stack([np.arange(1, opts.epochs + 1), hist[:, m]])
        perm = match_to_inputs(y_all[m], target_np) if match else tuple(range(n))
        foreign = np.stack([comps[m, i].sum(0) - comps[m, i, perm[i]] for i in range(n)])
        y_m, chosen = y_all[m][list(perm)], None
        if track:
            chosen = best_epochs[m][list(perm)]
        if sel:
            y_m, chosen = select_iterates(kept[m], y_m, target_np, kinds, opts.epochs, opts.learned.select_guard,
                                         opts.learned.select_estimate)
        outs.append(_MemberOutput(y=y_m, alpha=al_all[m], filters=model.filter_arrays(m),
                                  loss=loss_table, monitor=monitor[m], permutation=perm, foreign=foreign,
                                  snapshots=snapshots if m == 0 else [], selected_epochs=chosen,
                                  mixing=fit.mixing.to_dict() if fit.mixing is not None else None))
    return outs


def _slice_mismatch(out: dict, unmixed: torch.Tensor) -> torch.Tensor:
    """(K, N) mean squared difference of each slice Y_i of ``out`` from its unmixed slice (M^-1 x)_i."""
    return (out["slices"] - unmixed.to(out["slices"].dtype)).pow(2).mean(dim=(-2, -1))


def _track_best(best: dict, out: dict, unmixed: torch.Tensor, epoch: int) -> None:
    """Update ``best`` (select="loss") in place with the state ``out`` after ``epoch`` steps: per member and slice,
    keep the network image whose slice is closest (mean squared difference) to its unmixed slice. Device-side."""
    with torch.no_grad():
        d = out["slice_mismatch"] if "slice_mismatch" in out else _slice_mismatch(out, unmixed)
        better = d < best["val"]
        best["val"] = torch.where(better, d.to(best["val"].dtype), best["val"])
        best["epoch"] = torch.where(better, torch.full_like(best["epoch"], int(epoch)), best["epoch"])
        best["y"] = torch.where(better[..., None, None], out["y"].detach().to(best["y"].dtype), best["y"])


def _snapshot(epoch: int, y: torch.Tensor, inputs: Optional[np.ndarray]) -> tuple:
    """(epoch, y (N, H, W) float32 matched to the inputs, or in slot order when ``inputs`` is None) of one member's
    clean images y."""
    y_np = y.detach().cpu().numpy().astype(np.float32)
    return int(epoch), (y_np if inputs is None else y_np[list(match_to_inputs(y_np, inputs))])


def match_to_inputs(y: np.ndarray, inputs: np.ndarray) -> tuple:
    """The assignment of network outputs to input slices that maximises the summed correlation.

    DDIP's model is symmetric under swapping y_1 and y_2 together with the weights and filters, and a fit can land
    in the swapped solution (the fitted slot 1 holding slice 2's features). ``perm[i]`` is the output slot that
    becomes slice i; the identity when nothing is swapped. Brute force over permutations (N <= 7).
    """
    import itertools

    n = y.shape[0]
    c = np.array([[correlation(y[k], inputs[i]) for k in range(n)] for i in range(n)])
    return max(itertools.permutations(range(n)), key=lambda p: sum(c[i, p[i]] for i in range(n)))


def monitor_columns(n: int) -> tuple:
    cols = ["epoch"]
    cols += [f"ghost_to_signal_{i + 1}" for i in range(n)] + [f"correlation_{i + 1}" for i in range(n)]
    cols += [f"alpha_{i + 1}" for i in range(n)] + ["gradient_correlation"]
    return tuple(cols)


def _monitor_row(epoch: int, y: np.ndarray, alpha: np.ndarray, truth: np.ndarray, ghosts: Optional[np.ndarray],
                 inputs: Optional[np.ndarray] = None) -> list:
    """One monitor row for one member: y (N, H, W) the network outputs, alpha (N,)."""
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    if inputs is not None:  # score what the user would get at this epoch: outputs matched to the inputs
        y = y[list(match_to_inputs(y, inputs))]
    gsr, corr = [], []
    for i in range(n):
        g = ghosts[i] if ghosts is not None else np.stack([truth[j] for j in range(n) if j != i])
        gsr.append(ghost_to_signal(y[i], truth[i], g))
        corr.append(correlation(y[i], truth[i]))
    gc = float(np.mean([gradient_correlation(y[i], y[j]) for i in range(n) for j in range(i + 1, n)]))
    return [float(epoch)] + gsr + corr + [float(a) for a in alpha] + [gc]


# ----------------------------------------------------------------------------------------------- public API

def separate(images: np.ndarray | Sequence[np.ndarray], options: SeparationOptions | None = None, *,
             truth: np.ndarray | None = None, ghosts: np.ndarray | None = None, progress: bool = True,
             callback: Callable | None = None, members: Sequence[int] | None = None,
             **kwargs) -> SeparationResult:
    """Separate N >= 2 crosstalk-contaminated slice images with the modified DDIP.

    Parameters
    ----------
    images : (N, H, W) real images (any units), e.g. the phase of each reconstructed slice.
    options : a :class:`SeparationOptions`; keyword arguments override/construct it, option groups as dicts
        (``separate(x, epochs=500, estimate={"iters": 200})``, :meth:`SeparationOptions.updated`).
    truth : optional (N, H, W) true slices: the ghost-to-signal ratio and correlation of every slice are recorded
        every ``monitor_every`` epochs (``SeparationResult.monitor``).
    ghosts : optional (N, H, W) ghost images for the monitor (default: the other true slices as regressors).
    progress : progress display: True (a bar on a terminal, plain lines in logs), "lines", "bar" or False
        (see :mod:`ptycho_ddip.progress`).
    callback : called as ``callback(epoch, [total, mismatch, exclusion, weight], alpha)`` every ``log_every`` epochs.
    members : ensemble member indices to fit here (default all; MPI runs give each rank its share).

    Returns
    -------
    SeparationResult

    Examples
    --------
    >>> from ptycho_ddip.phantoms import make_phantom, blend
    >>> b = blend(make_phantom("au-nio", (64, 64)).normalized())
    >>> res = separate(b.inputs, epochs=5, progress=False)
    >>> res.separated.shape
    (2, 64, 64)
    """
    if options is None:
        options = SeparationOptions.from_dict(kwargs)
    elif kwargs:
        options = options.updated(**kwargs)
    x = validate_images(np.stack([np.asarray(im) for im in images]) if not isinstance(images, np.ndarray)
                        else images)
    if truth is not None:
        truth = np.asarray(truth, dtype=np.float64)
        if truth.shape != x.shape:
            raise ValueError(f"truth has shape {truth.shape}, images {x.shape}: they must match")
    outs = fit_members(x, options, members, truth=truth, ghosts=ghosts, progress=progress, callback=callback)
    return assemble_result(x, outs, options)


def member_checkpoint(options: SeparationOptions, k: int) -> Optional[str]:
    """Checkpoint file of the batch of members that starts with member k (the plain path for a single run)."""
    ck = options.checkpoint_path
    return f"{ck}.member{k}" if ck and options.ensemble > 1 else ck


def fit_members(x: np.ndarray, options: SeparationOptions, members: Sequence[int] | None = None, *,
                truth: np.ndarray | None = None, ghosts: np.ndarray | None = None, progress: bool = True,
                callback: Callable | None = None, rank: int = 0, mixing: Mixing | None = None) -> list:
    """Fit ensemble members ``members`` (default all) of validated images x; one output per member, in order.
    ``mixing``: an estimate of x's mixing made with ``options``' settings (:func:`estimate_target_mixing` of the
    normalised images), to share between fits of the same images; estimated here when needed and not given."""
    configure_threads(options.threads)
    device = resolve_device(options.device, rank=rank)
    target, _ = normalize_jointly(x)
    # the estimated mixing depends on the images only: estimated once, shared by every member
    if options.method == "estimate" and mixing is None:
        mixing = estimate_target_mixing(target, options, progress)
    idx = list(range(options.ensemble)) if members is None else list(members)
    # batching members pays on GPUs (fewer, larger kernels) but not on CPU (measured 0.6-1.1x per member at 272^2,
    # benchmarks/bench_separation.py --ensembles), so the default is one member at a time on CPU
    size = options.member_batch or (len(idx) if device.type == "cuda" else 1)
    outs = []
    for b in range(0, len(idx), size):
        batch = idx[b : b + size]
        if options.ensemble == 1:
            desc = "DDIP"
        elif len(batch) == 1:
            desc = f"DDIP member {batch[0] + 1}/{options.ensemble}"
        else:
            desc = f"DDIP members {batch[0] + 1}-{batch[-1] + 1}/{options.ensemble}"
        outs.extend(_fit_group(target, options, batch, device, truth, ghosts, progress,
                               member_checkpoint(options, batch[0]), desc, callback, mixing))
    return outs


def assemble_result(x: np.ndarray, outs: list, options: SeparationOptions) -> SeparationResult:
    """Combine member outputs (in member order) into a :class:`SeparationResult`."""
    ys = np.stack([o.y for o in outs])
    seps = np.stack([to_input_units(o.y, x) for o in outs])
    _, (mu, sd, lo, hi) = normalize_jointly(x)
    ghost = np.stack([o.foreign for o in outs]).mean(0) * (hi - lo) * sd
    config = {**options.to_dict(), "version": __version__,
              "permutations": [list(map(int, o.permutation)) for o in outs]}
    if outs[0].selected_epochs is not None:
        config["selected_epochs"] = [list(map(int, o.selected_epochs)) for o in outs]
    if outs[0].mixing is not None:
        config["mixing_estimate"] = outs[0].mixing
    first = outs[0]
    n = x.shape[0]
    mon = np.asarray(first.monitor, dtype=np.float64) if first.monitor else None
    snaps = snap_epochs = None
    if first.snapshots:
        snap_epochs = np.array([e for e, _ in first.snapshots], dtype=np.int64)
        snaps = np.stack([to_input_units(y.astype(np.float64), x) for _, y in first.snapshots])
    if len(outs) == 1:
        return SeparationResult(inputs=x, separated=seps[0], normalized=ys[0], alpha=first.alpha,
                                ghost_estimate=ghost, filters=first.filters, loss=first.loss, config=config, monitor=mon,
                                monitor_columns=monitor_columns(n) if mon is not None else (), snapshots=snaps,
                                snapshot_epochs=snap_epochs)
    return SeparationResult(inputs=x, separated=seps.mean(0), normalized=ys.mean(0), ghost_estimate=ghost,
                            alpha=np.stack([o.alpha for o in outs]), filters=first.filters, loss=first.loss,
                            config=config, std=seps.std(0, ddof=1), members=seps, monitor=mon,
                            monitor_columns=monitor_columns(n) if mon is not None else (), snapshots=snaps,
                            snapshot_epochs=snap_epochs)


# ----------------------------------------------------------------------------------------------- files

def output_paths(out_path: str) -> dict:
    """Every file a separation writes for ``OUT.h5``: the HDF5, a multi-page TIFF of the separated slices (and of
    the std for ensembles) and a PNG figure beside it."""
    stem = out_path[:-3] if out_path.endswith(".h5") else os.path.splitext(out_path)[0]
    return {"h5": out_path, "tiff": stem + "_separated.tiff", "std_tiff": stem + "_std.tiff", "png": stem + ".png",
            "snapshots_png": stem + "_snapshots.png"}


def output_keys(options: SeparationOptions) -> tuple:
    """The keys of :func:`output_paths` that a separation with ``options`` writes."""
    return (("h5", "tiff", "png") + (("std_tiff",) if options.ensemble > 1 else ())
            + (("snapshots_png",) if options.snapshot_every else ()))


def write_result_files(paths: dict, result: SeparationResult, truth: np.ndarray | None = None,
                       overwrite: bool = False, *, image_part: str | None = None,
                       pixel_size_m: float | None = None) -> None:
    """Write ``result`` to the files of :func:`output_paths` (HDF5, TIFFs, figures), each atomically. The figures
    label the images as ``image_part`` of a complex object (default: ``result.config["part"]``; "phase" -> rad,
    none -> input units) and draw scale bars when ``pixel_size_m`` (metres) is given."""
    from .. import io
    from ..plotting import separation_figure, snapshot_figure

    part = image_part or result.config.get("part")
    io.write_separation_result(paths["h5"], result.to_dict(), overwrite=overwrite)
    io.write_tiff(paths["tiff"], result.separated.astype(np.float32), overwrite=overwrite)
    if result.std is not None:
        io.write_tiff(paths["std_tiff"], result.std.astype(np.float32), overwrite=overwrite)
    separation_figure(result.inputs, result.separated, result.loss, result.alpha, std=result.std, truth=truth,
                      monitor=result.monitor, monitor_columns=result.monitor_columns,
                      mixing=result.config.get("mixing_estimate"), path=paths["png"], part=part,
                      pixel_size_m=pixel_size_m)
    if result.snapshots is not None:
        snapshot_figure(result.snapshots, result.snapshot_epochs, path=paths["snapshots_png"], part=part,
                        pixel_size_m=pixel_size_m)


def read_inputs(sources: Sequence[str], part: Optional[str] = None,
                truth_sources: Optional[Sequence[str]] = None) -> tuple:
    """Read and validate the slices of ``sources`` and, when given, the true slices (same shape), for the engine;
    errors name the files. Returns (images (N, H, W), truth or None)."""
    from .. import io

    images, _meta = io.read_images(sources, part=part, min_size=MIN_SIZE)
    truth = None
    if truth_sources:
        truth, _ = io.read_images(truth_sources, part=part, min_size=MIN_SIZE)
        if truth.shape != images.shape:
            raise io.InputError(f"{', '.join(truth_sources)}: truth has shape {truth.shape} but the inputs "
                                f"{', '.join(sources)} have {images.shape}; give one true slice per input slice")
    return validate_images(images, name=", ".join(sources)), truth


def separate_files(sources: Sequence[str], out_path: str, options: SeparationOptions | None = None, *,
                   part: str | None = None, truth_sources: Sequence[str] | None = None, overwrite: bool = False,
                   progress: bool = True, members: Sequence[int] | None = None,
                   gather: Callable | None = None, image_part: str | None = None,
                   pixel_size_m: float | None = None) -> SeparationResult | None:
    """Read slices from files, separate them, and write ``OUT.h5`` + TIFF + PNG (see :func:`output_paths`).
    ``image_part``, ``pixel_size_m``: labels and scale bars of the figures (:func:`write_result_files`).

    Every output path is checked before fitting (an existing file is an error unless ``overwrite``); all writes are
    atomic. ``gather`` (MPI) combines the member outputs of all ranks and returns them in member order on the
    writing rank, None elsewhere; such ranks return None.
    """
    from .. import io

    options = options or SeparationOptions()
    paths = output_paths(out_path)
    writing = gather is None or gather.is_root  # type: ignore[attr-defined]
    if writing:
        for key in output_keys(options):
            io.check_output_path(paths[key], overwrite)
    x, truth = read_inputs(sources, part, truth_sources)
    if (options.checkpoint_every or options.resume) and not options.checkpoint_path:
        options = dataclasses.replace(options, checkpoint_path=out_path + ".ckpt")
    outs = fit_members(x, options, members, truth=truth, progress=progress, rank=getattr(gather, "rank", 0))
    if gather is not None:
        outs = gather(outs)
        if not writing:
            return None
    result = assemble_result(x, outs, options)
    result.config["sources"] = list(sources)
    result.config["part"] = part
    write_result_files(paths, result, truth, overwrite, image_part=image_part, pixel_size_m=pixel_size_m)
    if options.checkpoint_path:  # the result is safely written: the checkpoints are no longer needed
        for k in range(options.ensemble):
            ck = member_checkpoint(options, k)
            if ck and os.path.exists(ck):
                os.remove(ck)
    return result
