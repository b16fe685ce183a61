"""Validated options of the DDIP separation; they round-trip through JSON and are saved into every result file."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional

from ..optionsbase import check_types
from .mixing import DEFAULT_SIGMAS
from .model import FILTER_TYPES, GHOST_KINDS
from .networks import kernel_sizes
from .select import SELECT_ESTIMATES

SCHEDULES = ("balanced", "paper")

#: what each schedule sets when the option itself is left at None
SCHEDULE_PRESETS = {
    # the published recipe: exclusion as in the DDIP code (no gradient balancing), weight regulariser for 100 epochs
    "paper": {"mixing": "learn", "exclusion_balance": False, "weight_reg_epochs": 100, "band_constraint": False,
              "gamma_ramp": 0.0, "exclusion_input": 0.0, "exclusion_coarse": 0.0},
    # default: the mixing estimated first and held fixed (section 14 of docs/separation_stability.md), with
    # Gandelsman et al.'s gradient-balanced exclusion and the input-anchored exclusion (section 9) for the
    # learnable mixing (--mixing learn) and for the estimated mixing's fit when gamma_excl > 0 (default 0 there)
    "balanced": {"mixing": "estimate", "exclusion_balance": True, "weight_reg_epochs": 100,
                 "band_constraint": False, "gamma_ramp": 0.0, "exclusion_input": 1.0, "exclusion_coarse": 0.0},
}
DEVICES = ("auto", "cpu", "cuda")
SELECT_RULES = ("final", "crosstalk", "loss")
MIXINGS = ("estimate", "learn")

#: default exclusion weight per filter type (DESIGN.md 3: 0.4-1.0 with single filters, 0.04-0.2 with shallow DIPs),
#: and with the estimated mixing (which uses no learnable filters)
MIXING_FITS = ("unmixed", "mixed")
DEFAULT_GAMMA = {"kernel": 0.5, "dip": 0.1, "estimate": 0.0}


@dataclass
class SeparationOptions:
    """Every option of a DDIP separation.

    Attributes
    ----------
    mixing : ``"estimate"`` (default in the "balanced" schedule): estimate the mixing first, as isotropic linear
        filters of a few numbers each, from the exclusion of the unmixed slices (:mod:`.mixing`), then fit the image
        DIPs with that mixing held fixed (:mod:`.fixed`); the weight DIP and the learnable filters (``filters``,
        ``kernel_size``, ``band_constraint``, ``ghost_norm``, ``filter_*``, ``weight_reg*``) are not used, and the
        ghost cannot come back (docs/separation_stability.md section 14). ``"learn"``: the paper's learnable mixing
        (weight DIP and filters f_ij), the "paper" schedule's choice. None = from the schedule.
    mixing_sigmas : widths (pixels) of the Gaussian blurs that make the estimated transfer functions (widest 6 px:
        wider ones let the estimate add image-wide smooth content to a slice; section 14).
    mixing_iters, mixing_lr : Adam iterations and learning rate of the mixing estimate.
    mixing_blur : Gaussian blur (pixels) of the images for the mixing estimate only (the mixing commutes with it);
        0 = none. About 1.5 px for noisy inputs (docs/separation_stability.md section 14).
    mixing_fit : the data term of the image DIPs with the estimated mixing. ``"unmixed"`` (default): each network
        image Y_i fits its own unmixed slice (M^-1 I)_i, so no network can absorb another's fitting residual (the
        mechanism of the slow slice-2 drift measured with ``"mixed"``, section 14); ``"mixed"``: the synthesis M Y
        fits the inputs I, as in the paper's mismatch. Both have the same exact minimiser, Y = M^-1 I.
    filters : ``"kernel"`` (learnable 7x7 kernels) or ``"dip"`` (shallow 3-level DIPs) for the ghost filters.
    kernel_size : support of the kernel filters in pixels (odd, >= 3; 7 as in the paper), or a (low-pass, high-pass)
        pair. A larger support starts as the same 7x7 filter, zero-padded, and can learn a ghost wider than 7x7 (such
        as a difference of Gaussians of 1.5-6 px). Measured in docs/separation_stability.md section 7: use it with
        ``band_constraint``; a free wide kernel can model the other slice almost whole. Costs about
        (kernel_size / 7)^2 more filter FLOPs. Ignored by shallow-DIP filters.
    ghost_kinds : per slice, the band of the ghost it receives (``"lowpass"``/``"highpass"``); None = slice 1
        low-pass, the others high-pass (the paper's assignment). Swap for data where slice 1 is hit by the strong
        scatterer's ghost.
    gamma_excl : weight of the exclusion loss; None = 0 with the estimated mixing (the exclusion has done its work in
        the estimate; in the fit it only smooths and, with ``mixing_fit="unmixed"``, lets the slice-2 ghost creep
        back, section 14), and with the learnable mixing 0.5 for kernels, 0.1 for shallow DIPs.
    gamma_ramp, gamma_ramp_epochs : the exclusion weight at epoch e is
        ``gamma_excl * (1 + gamma_ramp * min(e / gamma_ramp_epochs, 1))`` (:meth:`exclusion_weight`): it grows
        linearly over the first ``gamma_ramp_epochs`` epochs, while the image DIPs gain the capacity to fit fine
        detail (and with it the ghost), then stays. It does not depend on ``epochs``, so a resumed or extended run
        continues the same schedule. None = from the schedule; measured in docs/separation_stability.md section 8.
    epochs : number of fitting epochs (one Adam step each). With ``mixing="estimate"``, 0 returns the unmixed
        slices M^-1 I themselves (seconds; no network prior, so noise in the inputs stays in the outputs).
    lr, lr_decay, lr_step : Adam learning rate, multiplied by ``lr_decay`` every ``lr_step`` epochs.
    lr_schedule : ``"step"`` (the paper's: the lr_decay/lr_step steps above) or ``"cosine"`` (lr decays as
        ``0.01 + 0.99 (1 + cos(pi e / epochs)) / 2``; lr_decay and lr_step are then unused). Experimental: on
        the one validation blend tried it did not stop the ghost's comeback.
    weight_reg, weight_reg_epochs : ``weight_reg * sum (alpha - 0.5)^2`` during the first ``weight_reg_epochs``
        (None = from the schedule).
    schedule : ``"balanced"`` (default: gradient-balanced exclusion plus the input-anchored exclusion, which keep the
        slices cleaner over long fits)
        or ``"paper"`` (the published recipe, to reproduce the paper). Options left at None take the schedule's
        values (``SCHEDULE_PRESETS``); options given explicitly win.
    seed : seeds the noise inputs and the network weights (ensemble member k uses seed + k).
    ensemble : number of members K; the result is their mean, with a per-pixel standard deviation.
    member_batch : members fitted together in one batched (grouped) network; 0 = automatic: all members of this
        process at once on CUDA, one at a time on CPU (where batching was measured no faster per member). Each
        member gets the updates of a separate run (to float rounding); memory grows with the batch.
    fast : the optimised path (grouped networks, channels-last layout, fused Adam, fused exclusion loss); False =
        the plain eager reference (separate networks, default layout), kept for comparison and benchmarks.
        Both compute the same function: in float64 they agree to ~1e-10 over a fit. In float32 a DIP fit amplifies
        rounding differences (BatchNorm on 0.01-scale noise, Adam's normalised steps) until two paths, or two
        batch layouts, diverge like two seeds; each path is bit-reproducible with itself on the same machine.
    dtype : ``"float32"`` (default) or ``"float64"`` (slow; for exact comparisons).
    device : ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    threads : CPU threads; None = the CPUs this process may use (cgroup quota and affinity), divided among MPI
        ranks on the node.
    noise_scale : amplitude of the uniform noise inputs (0.01 as in the original code).
    filter_sigmoid : end shallow-DIP filters in a sigmoid (the original; cannot produce a negative high-pass ghost).
    filter_blur : Gaussian blur (pixels, standard deviation) after every *low-pass* shallow-DIP filter, which
        handicaps that filter in passing fine detail: unconstrained, it learns to amplify zone-plate stripes 10-50x,
        and slice 1 loses its own fine structure (docs/separation_stability.md sections 6 and 13). 0 = none (the
        default, as in the paper). Measured at 1.5 px: on the 12 blends it was tried on, slice 1 is cleaner and
        never ends worse than its input (5 of 12 without); on 6 new blends both slices are worse, so it is not a
        default. Kernel filters ignore it (their band is kept by ``band_constraint``).
    ghost_norm : rescale each filtered ghost to its source's standard deviation (see DDIPModel).
    exclusion_balance : balance gradient magnitudes in the exclusion loss (Gandelsman et al.'s original form);
        None = from the schedule.
    band_constraint : keep kernel filters in the band of their ghost after every Adam step: low-pass kernels
        non-negative (they cannot amplify high frequencies above their mean gain), high-pass kernels zero-sum (no
        DC). Without it the free 7x7 "low-pass" kernel can become a high-frequency amplifier, and a zone plate's
        stripes then move from slice 1 into slice 2 (docs/separation_stability.md section 6). No effect on
        shallow-DIP filters. None = from the schedule.
    exclusion_ghost : extra exclusion, with this weight relative to gamma_excl, between each y_i and the ghosts
        f_ij(y_j) it receives.
    exclusion_input, exclusion_input_scales : extra exclusion, with this weight relative to gamma_excl, between each
        slice y_i that receives a high-pass ghost and the *input* image I_j of each slice that receives a low-pass
        ghost, over the first ``exclusion_input_scales`` scales (1, 2, 4 px for 3: the band of high-pass ghosts).
        I_j holds slice j's edges from the first epoch, while y_j learns them only gradually; where y_j has not
        yet learned them, plain exclusion against y_j cannot stop y_i from taking slice j's high-pass ghost
        (docs/separation_stability.md section 9). A low-pass ghost adds few fine edges to I_j, so the anchor
        hardly sees slice i's own content there. None = from the schedule (1 in "balanced", 0 in "paper").
    exclusion_coarse, exclusion_coarse_from : the mirror image at coarse scales: extra exclusion, with this weight
        relative to gamma_excl, between each slice y_j that receives a *low-pass* ghost and the input I_i of each
        slice that receives a high-pass ghost, over the scales from level ``exclusion_coarse_from`` on (images
        average-pooled 2x2 that many times first: 4, 8 and 16 px for 2). I_i holds slice i's coarse features from
        the first epoch (its own high-pass ghost adds few coarse edges), and y_j should not share them: they are
        the low-pass ghost y_j receives, which the image DIP, fitting low frequencies first, otherwise keeps for
        long (docs/separation_stability.md section 11). None = from the schedule.
    match_inputs : assign the fitted outputs to the input slices by maximal correlation (undoes a swapped fit,
        where DIP-1 ends up with slice 2's features); ``config["permutations"]`` records what was done. ``alpha``
        always refers to the fitted model's slots.
    select, select_every, select_from, select_guard : which iterate is returned for each slice that receives a
        high-pass ghost. ``"final"``: the last one. ``"crosstalk"``: the fit keeps that slice's image every
        ``select_every`` epochs from epoch ``select_from`` on and returns, among those correlating >=
        ``select_guard`` with the final image and the final image itself, the one scored cleanest by the truth-free
        crosstalk estimate ``select_estimate``: ``"rank"`` (the smallest sum of ranks under the plain and the partial
        estimate), ``"partial"`` or ``"plain"`` (module :mod:`ptycho_ddip.separation.select`;
        docs/separation_stability.md sections 10-12). It costs memory:
        one image per kept epoch, slice and member. ``"loss"``: for each slice, the iterate with the smallest
        mismatch to its own unmixed slice over the whole fit, the final state included (the estimated mixing with
        ``mixing_fit="unmixed"`` and ``gamma_excl=0`` only, where the slices' fits are independent; it steps over
        the occasional Adam spike that can land on the last epoch; kept on the device, no host sync, no extra
        memory but one image per slice and member). None = ``"loss"`` with the estimated mixing's default fit
        (``"final"`` with other fits of the estimated mixing, which do not drift back either); ``"crosstalk"``
        with the learnable mixing and kernel filters in the "balanced" schedule; ``"final"`` with shallow-DIP
        filters (where it did not help) and in the "paper" schedule.
    log_every : epochs between progress updates / host syncs.
    monitor_every : epochs between ground-truth metric evaluations (only when truth is given).
    snapshot_every : keep the clean slices every this many epochs (0 = none), for the first member, matched to the
        inputs and in input units (``SeparationResult.snapshots``, written to the result file and drawn as a
        filmstrip). Needs no ground truth: it lets a user see a ghost come back on real data, where the fit can be
        cleaner at an intermediate epoch than at the end (docs/separation_stability.md).
    checkpoint_every : epochs between checkpoints (0 = none); ``checkpoint_path`` where to write them.
    resume : continue from ``checkpoint_path`` if it exists.
    """

    mixing: Optional[str] = None
    mixing_sigmas: tuple = DEFAULT_SIGMAS
    mixing_iters: int = 800
    mixing_lr: float = 0.005
    mixing_blur: float = 0.0
    mixing_fit: str = "unmixed"
    filters: str = "kernel"
    kernel_size: int | tuple = 7
    ghost_kinds: Optional[tuple] = None
    gamma_excl: Optional[float] = None
    gamma_ramp: Optional[float] = None
    gamma_ramp_epochs: int = 2000
    epochs: int = 2000
    lr: float = 1e-3
    lr_decay: float = 0.9
    lr_step: int = 500
    lr_schedule: str = "step"
    weight_reg: float = 0.5
    weight_reg_epochs: Optional[int] = None
    schedule: str = "balanced"
    seed: int = 0
    ensemble: int = 1
    member_batch: int = 0
    fast: bool = True
    dtype: str = "float32"
    device: str = "auto"
    threads: Optional[int] = None
    noise_scale: float = 0.01
    filter_sigmoid: bool = False
    filter_blur: float = 0.0
    ghost_norm: bool = False
    match_inputs: bool = True
    exclusion_balance: Optional[bool] = None
    exclusion_ghost: float = 0.0
    exclusion_input: Optional[float] = None
    exclusion_input_scales: int = 3
    exclusion_coarse: Optional[float] = None
    exclusion_coarse_from: int = 2
    band_constraint: Optional[bool] = None
    select: Optional[str] = None
    select_every: int = 50
    select_from: int = 100
    select_guard: float = 0.9
    select_estimate: str = "rank"
    log_every: int = 10
    monitor_every: int = 50
    snapshot_every: int = 0
    checkpoint_every: int = 0
    checkpoint_path: Optional[str] = None
    resume: bool = False
    channels: tuple = (8, 16, 32, 64, 128)
    skip_channels: tuple = (0, 0, 0, 4, 4)
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.extra:
            raise ValueError(f"unknown separation options: {sorted(self.extra)}")
        check_types(self, skip=("extra",))
        if self.filters not in FILTER_TYPES:
            raise ValueError(f"filters must be one of {FILTER_TYPES}, got {self.filters!r}")
        if self.ghost_kinds is not None:
            self.ghost_kinds = tuple(self.ghost_kinds)
            bad = [k for k in self.ghost_kinds if k not in GHOST_KINDS]
            if bad:
                raise ValueError(f"ghost_kinds entries must be in {GHOST_KINDS}, got {bad}")
        ks = kernel_sizes(self.kernel_size)  # validates
        if isinstance(self.kernel_size, (list, tuple)):
            self.kernel_size = (ks["lowpass"], ks["highpass"])  # a JSON list back to the pair
        else:
            self.kernel_size = ks["lowpass"]
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.mixing is None:
            self.mixing = SCHEDULE_PRESETS[self.schedule]["mixing"]
        if self.gamma_excl is None:
            self.gamma_excl = DEFAULT_GAMMA["estimate" if self.mixing == "estimate" else self.filters]
        if not self.gamma_excl >= 0:
            raise ValueError(f"gamma_excl must be >= 0, got {self.gamma_excl}")
        for name in ("lr_step", "mixing_iters", "ensemble", "log_every", "monitor_every", "gamma_ramp_epochs",
                     "exclusion_input_scales"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 < self.lr_decay <= 1 and self.weight_reg >= 0 and self.noise_scale > 0):
            raise ValueError("lr and noise_scale must be > 0, lr_decay in (0, 1], weight_reg >= 0")
        if self.lr_schedule not in ("step", "cosine"):
            raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name, value in SCHEDULE_PRESETS[self.schedule].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.mixing not in MIXINGS:
            raise ValueError(f"mixing must be one of {MIXINGS}, got {self.mixing!r}")
        if int(self.epochs) < (0 if self.mixing == "estimate" else 1):
            raise ValueError(f"epochs must be >= 1 (>= 0 with mixing='estimate'), got {self.epochs}")
        self.mixing_sigmas = tuple(float(s) for s in self.mixing_sigmas)
        if not self.mixing_sigmas or min(self.mixing_sigmas) <= 0 or not self.mixing_lr > 0:
            raise ValueError("mixing_sigmas must be positive widths in pixels and mixing_lr > 0")
        if self.mixing_fit not in MIXING_FITS:
            raise ValueError(f"mixing_fit must be one of {MIXING_FITS}, got {self.mixing_fit!r}")
        if not self.mixing_blur >= 0:
            raise ValueError(f"mixing_blur must be >= 0, got {self.mixing_blur}")
        if self.select is None:
            if self.mixing == "estimate":
                self.select = "loss" if self.mixing_fit == "unmixed" and self.gamma_excl == 0 else "final"
            else:
                self.select = "crosstalk" if self.schedule == "balanced" and self.filters == "kernel" else "final"
        if self.select not in SELECT_RULES:
            raise ValueError(f"select must be one of {SELECT_RULES}, got {self.select!r}")
        if self.select == "loss" and not (self.mixing == "estimate" and self.mixing_fit == "unmixed"
                                          and self.gamma_excl == 0):
            raise ValueError("select='loss' needs the estimated mixing with mixing_fit='unmixed' and gamma_excl=0 "
                             "(where each slice's own mismatch scores it); use select='final' otherwise")
        if not 0 <= int(self.exclusion_coarse_from) <= 4:
            raise ValueError(f"exclusion_coarse_from must be a scale level in 0..4, got {self.exclusion_coarse_from}")
        if self.select_estimate not in SELECT_ESTIMATES:
            raise ValueError(f"select_estimate must be one of {SELECT_ESTIMATES}, got {self.select_estimate!r}")
        if int(self.select_every) < 1 or not 0 <= self.select_guard <= 1:
            raise ValueError("select_every must be >= 1 and select_guard in [0, 1]")
        for name in ("checkpoint_every", "weight_reg_epochs", "member_batch", "snapshot_every", "gamma_ramp",
                     "exclusion_input", "exclusion_coarse", "select_from", "filter_blur"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be one of {DEVICES} or cuda:N, got {self.device!r}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self.channels, self.skip_channels = tuple(self.channels), tuple(self.skip_channels)
        if len(self.channels) != len(self.skip_channels):
            raise ValueError("channels and skip_channels need the same length")
        if (self.checkpoint_every or self.resume) and not self.checkpoint_path:
            raise ValueError("checkpoint_every/resume need a checkpoint_path")

    def exclusion_weight(self, epoch: int) -> float:
        """The exclusion-loss weight at ``epoch`` (0-based): gamma_excl, ramped by gamma_ramp (see the class)."""
        e = self.gamma_ramp_epochs
        return float(self.gamma_excl) * (1.0 + float(self.gamma_ramp) * min(epoch, e) / e)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SeparationOptions":
        """Build from a dict; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    @classmethod
    def from_json(cls, s: str) -> "SeparationOptions":
        return cls.from_dict(json.loads(s))
