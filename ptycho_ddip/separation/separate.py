"""The public entry of a DDIP separation: options -> fits (:mod:`.engine`) -> :class:`SeparationResult`.

Units. Inputs are normalised jointly for fitting (z-score over all slices, then min-max to [0, 1]). The networks'
clean images y_i live in that normalised space (``SeparationResult.normalized``). ``SeparationResult.separated``
maps each y_i back to the input's units by the least-squares affine fit of y_i to its input I_i: the part of the
input explained by slice i's own signal, with the ghost removed. Ensembles: members are fitted in groups (one batched
network per group) and averaged; ``std`` is their per-pixel standard deviation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from .._version import __version__
from ..runtime import configure_threads, resolve_device
from .engine import (BestIterate, Checkpoint, Engine, KeptIterates, Monitor, Progress, Snapshots, match_to_inputs,
                     monitor_columns)
from .fit import Fit, estimate_target_mixing
from .mixing import Mixing
from .model import default_ghost_kinds
from .options import SeparationOptions
from .select import selected_slices

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
    totals : (N, H, W) each slice with everything of it that the inputs hold, summed over the inputs (its own term
        in its input plus its ghosts in the others), input units (ensemble: mean). The totals add up to the sum of
        the inputs: the separation only moves content between slices. For the slices of a multislice
        reconstruction, whose summed phase the data determine while its split between slices is ambiguous, these
        are the physical slices (the pipeline seeds its second pass with them).
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
    totals: Optional[np.ndarray] = None

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
        if self.totals is not None:
            extra["totals"] = self.totals
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


# ----------------------------------------------------------------------------------------------- one group of members

@dataclass
class _MemberOutput:
    y: np.ndarray
    alpha: np.ndarray
    filters: dict
    loss: np.ndarray
    monitor: list = field(default_factory=list)
    permutation: tuple = ()
    foreign: Optional[np.ndarray] = None  # (N, H, W) the model's ghost part of each input, normalised units
    totals: Optional[np.ndarray] = None  # (N, H, W) each slice summed over the inputs' components, normalised units
    snapshots: list = field(default_factory=list)  # [(epoch, (N, H, W) y matched to the inputs)], first member
    selected_epochs: Optional[np.ndarray] = None  # (N,) the epoch each returned slice comes from (select option)
    mixing: Optional[dict] = None  # the estimated mixing (Mixing.to_dict()), method="estimate" only


@dataclass
class _Run:
    """What the fits of one separation share besides the options: the normalised images (N, H, W), the device, the
    ground truth of the monitor, the display and the shared mixing estimate."""

    target: np.ndarray
    device: torch.device
    truth: Optional[np.ndarray] = None
    ghosts: Optional[np.ndarray] = None
    progress: Any = True
    callback: Optional[Callable] = None
    mixing: Optional[Mixing] = None


def _hooks(run: _Run, opts: SeparationOptions, fit: Fit, checkpoint_path: Optional[str], desc: str,
           config: dict) -> dict:
    """The engine's hooks that ``opts`` ask for, by role, in the order they run (the checkpoint last)."""
    inputs = run.target if opts.experimental.match_inputs else None
    kinds = opts.ghost_kinds or default_ghost_kinds(run.target.shape[0])
    hooks: dict = {}
    if opts.select == "loss" and opts.epochs > 0:
        hooks["best"] = BestIterate(fit.model.unmixed, fit.members)
    if run.truth is not None:
        hooks["monitor"] = Monitor(run.truth, run.ghosts, opts.monitor_every, inputs, fit.members)
    if opts.snapshot_every:
        hooks["snapshots"] = Snapshots(opts.snapshot_every, run.target)
    if opts.select == "crosstalk":
        lo = opts.learned
        hooks["kept"] = KeptIterates(selected_slices(kinds), lo.select_every, lo.select_from, inputs, fit.members)
    hooks["progress"] = Progress(desc, run.progress, opts.experimental.log_every, run.callback)
    if checkpoint_path and opts.checkpoint_every:
        hooks["checkpoint"] = Checkpoint(checkpoint_path, opts.checkpoint_every, config)
    return hooks


def _fit_group(run: _Run, opts: SeparationOptions, member_ids: Sequence[int], checkpoint_path: Optional[str],
               desc: str) -> list:
    """Fit ensemble members ``member_ids`` (seeds ``opts.seed + id``) together; one _MemberOutput per member."""
    seeds = [opts.seed + int(m) for m in member_ids]
    fit = Fit(run.target, opts, seeds, run.device, run.mixing)
    config = {**opts.to_dict(), "seeds": seeds}
    hooks = _hooks(run, opts, fit, checkpoint_path, desc, config)
    engine = Engine(fit, opts.epochs, hooks.values())
    if checkpoint_path and opts.resume and os.path.exists(checkpoint_path):
        engine.restore(checkpoint_path, config)
    _, returned = engine.run()
    return _member_outputs(run, opts, engine, returned, hooks)


def _member_outputs(run: _Run, opts: SeparationOptions, engine: Engine, returned: dict, hooks: dict) -> list:
    """Each member's returned slices matched to the inputs (and chosen by ``select``), weights, filters, losses,
    monitor rows and the model's ghost part of each input."""
    fit, target = engine.fit, run.target
    n = target.shape[0]
    kinds = opts.ghost_kinds or default_ghost_kinds(n)
    y_all = returned["y"].cpu().numpy().astype(np.float64)
    al_all = returned["alpha"].cpu().numpy().astype(np.float64)
    comps = fit.components(returned).cpu().numpy().astype(np.float64)
    hist = engine.history.cpu().numpy().astype(np.float64)
    best, kept, monitor = hooks.get("best"), hooks.get("kept"), hooks.get("monitor")
    snapshots = hooks["snapshots"].items if "snapshots" in hooks else []
    outs = []
    for m in range(fit.members):
        loss_table = np.column_stack([np.arange(1, opts.epochs + 1), hist[:, m]])
        perm = match_to_inputs(y_all[m], target) if opts.experimental.match_inputs else tuple(range(n))
        foreign = np.stack([comps[m, i].sum(0) - comps[m, i, perm[i]] for i in range(n)])
        totals = np.stack([comps[m, :, perm[i]].sum(0) for i in range(n)])
        y_m, chosen = y_all[m][list(perm)], None
        if best is not None:
            chosen = best.epochs[m][list(perm)]
        if kept is not None:
            y_m, chosen = kept.select(m, y_m, target, kinds, opts.epochs, opts.learned.select_guard,
                                      opts.learned.select_estimate)
        outs.append(_MemberOutput(y=y_m, alpha=al_all[m], filters=fit.model.filter_arrays(m), loss=loss_table,
                                  monitor=monitor.rows[m] if monitor is not None else [], permutation=perm,
                                  foreign=foreign, totals=totals, snapshots=snapshots if m == 0 else [],
                                  selected_epochs=chosen,
                                  mixing=fit.mixing.to_dict() if fit.mixing is not None else None))
    return outs


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
        mixing = estimate_target_mixing(target, options, progress, device)
    run = _Run(target, device, truth, ghosts, progress, callback, mixing)
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
        outs.extend(_fit_group(run, options, batch, member_checkpoint(options, batch[0]), desc))
    return outs


def assemble_result(x: np.ndarray, outs: list, options: SeparationOptions) -> SeparationResult:
    """Combine member outputs (in member order) into a :class:`SeparationResult`."""
    ys = np.stack([o.y for o in outs])
    seps = np.stack([to_input_units(o.y, x) for o in outs])
    _, (mu, sd, lo, hi) = normalize_jointly(x)
    ghost = np.stack([o.foreign for o in outs]).mean(0) * (hi - lo) * sd
    # x = (I - mu) / sd - lo, / (hi - lo): each total takes one image's offset, so that they add up to the inputs'
    totals = mu + sd * lo + np.stack([o.totals for o in outs]).mean(0) * (hi - lo) * sd
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
                                ghost_estimate=ghost, filters=first.filters, loss=first.loss, config=config,
                                monitor=mon,
                                monitor_columns=monitor_columns(n) if mon is not None else (), snapshots=snaps,
                                snapshot_epochs=snap_epochs, totals=totals)
    return SeparationResult(inputs=x, separated=seps.mean(0), normalized=ys.mean(0), ghost_estimate=ghost,
                            alpha=np.stack([o.alpha for o in outs]), filters=first.filters, loss=first.loss,
                            config=config, std=seps.std(0, ddof=1), members=seps, monitor=mon,
                            monitor_columns=monitor_columns(n) if mon is not None else (), snapshots=snaps,
                            snapshot_epochs=snap_epochs, totals=totals)
