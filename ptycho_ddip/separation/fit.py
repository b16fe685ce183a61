"""One DDIP fit's model, losses and Adam step (:class:`Fit`); the loop around it is :mod:`.engine`.

The model is :class:`~.fixed.FixedMixingDIP` for ``method="estimate"`` (the image DIPs under an estimated, fixed
mixing) or the paper's DDIP model with learnable mixing for ``method="paper"`` (:mod:`.batched`: the fast grouped
form or the plain reference). Images are the jointly normalised targets, [0, 1] (:func:`.separate.normalize_jointly`).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from .batched import build_model
from .fixed import FixedMixingDIP
from .losses import exclusion_all_pairs, exclusion_pairs, mismatch
from .mixing import Mixing, estimate_mixing
from .model import default_ghost_kinds
from .options import ESTIMATE_EXCLUSION, SeparationOptions

__all__ = ["Fit", "member_losses", "exclusion_form", "input_anchor_pairs", "estimate_target_mixing",
           "synthesis_components", "slice_mismatch"]


def estimate_target_mixing(target_np: np.ndarray, opts: SeparationOptions, progress: bool = False,
                           device: Optional[torch.device] = None) -> Mixing:
    """The mixing of normalised images ``target_np`` (N, H, W) estimated with ``opts.estimate`` (float64; on the
    fit's device when that is a GPU, on the CPU otherwise)."""
    e = opts.estimate
    dev = device if device is not None and device.type == "cuda" else None
    return estimate_mixing(target_np, opts.ghost_kinds, e.sigmas_px, e.iters, e.lr, blur_px=e.blur_px,
                           progress=progress, model=e.model, device=dev)


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
    (the input anchor, relative to gamma_excl): fixed for ``method="estimate"``
    (:data:`~.options.ESTIMATE_EXCLUSION`), the ``learned`` settings for ``method="paper"``."""
    if opts.method == "estimate":
        return ESTIMATE_EXCLUSION
    lo = opts.learned
    return {"balance": lo.exclusion_balance, "input_weight": lo.exclusion_input,
            "input_scales": lo.exclusion_input_scales}


def _input_anchor(target: torch.Tensor, opts: SeparationOptions) -> Optional[tuple]:
    """(slice indices, (1, P, H, W) anchor inputs) of the input-anchored exclusion on ``target`` (1, N, H, W), or
    None when it is off or no slice pair qualifies; computed once per fit."""
    hp, lp = input_anchor_pairs(opts.ghost_kinds or default_ghost_kinds(target.shape[1]))
    return (hp, target[:, lp].contiguous()) if exclusion_form(opts)["input_weight"] > 0 and hp else None


def slice_mismatch(out: dict, unmixed: torch.Tensor) -> torch.Tensor:
    """(K, N) mean squared difference of each slice Y_i of ``out`` from its unmixed slice (M^-1 x)_i."""
    return (out["slices"] - unmixed.to(out["slices"].dtype)).pow(2).mean(dim=(-2, -1))


def member_losses(model, out: dict, target: torch.Tensor, opts: SeparationOptions, epoch: int,
                  pairs: tuple, anchor: Optional[tuple] = None) -> tuple:
    """(mismatch, exclusion, weight) per member, each (K,). Fused on the fast path, the reference loss functions
    member by member on the plain path. With the estimated mixing the mismatch is that of each slice Y_i to its own
    unmixed slice (M^-1 I)_i (kept in ``out["slice_mismatch"]`` for the best-iterate tracking). A zero exclusion
    weight (``gamma_excl=0``, the estimated mixing's default) skips the exclusion terms (their column is then 0)."""
    y = out["y"]
    k = y.shape[0]
    form = exclusion_form(opts)
    bal, fast = form["balance"], opts.experimental.fast
    if opts.method == "estimate":
        per_slice = slice_mismatch(out, model.unmixed)
        out["slice_mismatch"] = per_slice.detach()
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


class Fit:
    """Model, optimiser and learning-rate schedule of members ``seeds`` on normalised images ``target_np`` (N, H, W).

    With ``opts.method == "estimate"`` the model is a :class:`~.fixed.FixedMixingDIP` on ``mixing`` (estimated here
    when not given); otherwise the DDIP model with learnable mixing (fast or plain path, ``experimental.fast``).

    ``step(epoch)`` runs one Adam step of every member and returns the model outputs (before the step, i.e. the
    state after ``epoch`` steps) and a (K, 4) tensor of total, mismatch, exclusion and weight losses, left on the
    device (no host sync). ``penalty``, if given, maps the model outputs to an extra (K,) loss added to the total
    (for experiments).
    """

    def __init__(self, target_np: np.ndarray, opts: SeparationOptions, seeds: Sequence[int], device: torch.device,
                 mixing: Optional[Mixing] = None):
        n, h, w = target_np.shape
        self.opts, self.device, self.members = opts, device, len(seeds)
        self.dtype = getattr(torch, opts.dtype)
        self.mixing = None
        x = opts.experimental
        if opts.method == "estimate":
            self.mixing = mixing if mixing is not None else estimate_target_mixing(target_np, opts)
            model = FixedMixingDIP(target_np, self.mixing, seeds, channels=x.channels, skip_channels=x.skip_channels,
                                   noise_scale=x.noise_scale,
                                   # channels-last pays on CPUs; on an H200 NCHW was 1.21x faster at 272 px
                                   # (benchmarks/results/h200_2026-12-04)
                                   channels_last=x.fast and device.type != "cuda")
        else:
            model = build_model(n, (h, w), seeds, fast=x.fast, filters=opts.learned.filters,
                                ghost_kinds=opts.ghost_kinds, channels=x.channels, skip_channels=x.skip_channels,
                                noise_scale=x.noise_scale, filter_sigmoid=x.filter_sigmoid)
        self.model = model.to(device=device, dtype=self.dtype)
        self.target = torch.as_tensor(target_np, dtype=self.dtype, device=device)[None]
        fused = x.fast and device.type in ("cpu", "cuda")
        self.optim = torch.optim.Adam(self.model.parameters(), lr=opts.lr, fused=fused or None)
        self.sched = torch.optim.lr_scheduler.StepLR(self.optim, step_size=x.lr_step, gamma=x.lr_decay)
        self.pairs = ([i for i in range(n) for j in range(i + 1, n)], [j for i in range(n) for j in range(i + 1, n)])
        self.anchor = _input_anchor(self.target, opts)

    def step(self, epoch: int, penalty: Optional[Callable] = None) -> tuple:
        out = self.model()
        with record_function("ddip.losses"):
            mis, exc, reg = member_losses(self.model, out, self.target, self.opts, epoch, self.pairs, self.anchor)
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

    def outputs(self, unmixed: bool = False) -> dict:
        """The model's outputs now, without gradients; ``unmixed``: those of the unmixed slices M^-1 x (what a fit of
        0 epochs of the estimated mixing returns)."""
        with torch.no_grad():
            return self.model.unmixed_outputs() if unmixed else self.model()

    def components(self, out: dict) -> torch.Tensor:
        """(K, N_input, N_slot, H, W) the own and ghost terms of each synthesised input of ``out``."""
        with torch.no_grad():
            if self.mixing is not None:
                return self.model.components(out)
            return synthesis_components(out, out["ghosts"] if "ghosts" in out else self.model.ghosts(out["y"]))

    def state_dict(self) -> dict:
        """Model, optimiser and schedule, for checkpoints."""
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
