"""Validated options of the DDIP separation, in tiers; they round-trip through JSON and are saved into every result.

:class:`SeparationOptions` holds what a user sets (method, epochs, seed, ensemble, device, checkpoints, ...) and three
groups: ``estimate`` (:class:`EstimateOptions`, the mixing estimate of ``method="estimate"``), ``learned``
(:class:`LearnedOptions`, the paper's learnable mixing of ``method="paper"``) and ``experimental``
(:class:`ExperimentalOptions`: network sizes, the plain reference path, the learning-rate decay; no CLI flags). Each
method's group is present (not None) exactly when that method is chosen. In configs (JSON/TOML) the groups are
nested tables::

    {"method": "paper", "epochs": 2000, "learned": {"filters": "dip"}}

Keys of older versions (``schedule``, ``mixing``, ``mixing_iters``, ``filter_blur``, ...) are refused with a message
that names what replaced them (:data:`MOVED`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..optionsbase import Options, OptionsError, check_types
from .mixing import DEFAULT_SIGMAS, MODELS as MIXING_MODELS
from .model import FILTER_TYPES, GHOST_KINDS
from .select import SELECT_ESTIMATES

__all__ = ["SeparationOptions", "EstimateOptions", "LearnedOptions", "ExperimentalOptions", "METHODS",
           "DEFAULT_GAMMA", "MOVED", "OptionsError"]

METHODS = ("estimate", "paper")
DEVICES = ("auto", "cpu", "cuda")
SELECT_RULES = ("final", "crosstalk", "loss")
GROUPS = ("estimate", "learned", "experimental")

#: default exclusion weight per filter type of the learnable mixing (DESIGN.md 3: 0.4-1.0 with single filters,
#: 0.04-0.2 with shallow DIPs), and with the estimated mixing (which uses no learnable filters)
DEFAULT_GAMMA = {"kernel": 0.5, "dip": 0.1, "estimate": 0.0}

#: the exclusion of ``method="estimate"`` when gamma_excl > 0: gradient-balanced, with the input anchor (weight 1
#: relative to gamma_excl, 3 scales), the form measured in docs/method.md
ESTIMATE_EXCLUSION = {"balance": True, "input_weight": 1.0, "input_scales": 3}

_FAILED = "was removed: it failed validation (docs/method.md)"
_LEARNED = "is now learned.{} (with method='paper'; in a config: the 'learned' table)"
_EXPERIMENTAL = "is now experimental.{} (in a config: the 'experimental' table)"

#: options of older versions -> what replaced them (the message of the error they raise)
MOVED = {
    "schedule": "is now method: schedule='balanced' -> method='estimate', schedule='paper' -> method='paper'",
    "mixing": ("is now method: mixing='estimate' -> method='estimate'; mixing='learn' -> method='paper' (the old "
               "schedule='balanced' with mixing='learn' is method='paper' with learned.exclusion_balance=true, "
               "learned.exclusion_input=1 and select='crosstalk' with kernel filters)"),
    "mixing_sigmas": "is now estimate.sigmas_px (in a config: the 'estimate' table)",
    "mixing_iters": "is now estimate.iters (in a config: the 'estimate' table)",
    "mixing_lr": "is now estimate.lr (in a config: the 'estimate' table)",
    "mixing_blur": "is now estimate.blur_px (in a config: the 'estimate' table)",
    "mixing_fit": ("was removed: the estimated mixing's fit always fits each slice to its own unmixed slice (the old "
                   "'unmixed'); 'mixed' let the ghost creep back (docs/method.md)"),
    **{k: _LEARNED.format(k) for k in ("filters", "weight_reg", "weight_reg_epochs", "exclusion_balance",
                                       "exclusion_input", "exclusion_input_scales", "select_estimate",
                                       "select_every", "select_from", "select_guard")},
    **{k: _EXPERIMENTAL.format(k) for k in ("lr_decay", "lr_step", "noise_scale", "channels", "skip_channels",
                                            "fast", "match_inputs", "filter_sigmoid", "log_every")},
    **{k: _FAILED for k in ("filter_blur", "exclusion_coarse", "exclusion_coarse_from", "gamma_ramp",
                            "gamma_ramp_epochs", "ghost_norm", "exclusion_ghost", "band_constraint", "kernel_size")},
    "lr_schedule": ("was removed: the cosine schedule failed validation; the paper's step decay stays "
                    "(experimental.lr_decay, experimental.lr_step)"),
}


def _at_least(obj: Any, minimum: float, *names: str) -> None:
    prefix = f"{obj.LABEL}." if obj.LABEL in GROUPS else ""
    for name in names:
        if not getattr(obj, name) >= minimum:
            raise OptionsError(f"option {prefix}{name} must be >= {minimum:g}, got {getattr(obj, name)!r}")


def _one_of(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise OptionsError(f"option {name} must be one of {choices}, got {value!r}")


@dataclass
class EstimateOptions(Options):
    """The mixing estimate of ``method="estimate"`` (:func:`~ptycho_ddip.separation.mixing.estimate_mixing`).

    Attributes
    ----------
    model : ``"direct"``: the clean slices are Y = (1 + R) I, each R_ij a signed combination of an all-pass term and
        the Gaussian blurs (all-pass, low-, high- and band-pass unmixing of either sign; no ghost kinds to choose:
        swapped slices and the all-pass leaks of reconstructions included); ``"ghost"``: I = M Y with ghost filters
        of fixed kinds (slice 1 low-pass, the others high-pass, or ``ghost_kinds``). None (default) = ``"ghost"``
        when ``ghost_kinds`` is given, else ``"direct"`` (docs/method.md).
    sigmas_px : widths (pixels) of the Gaussian blurs that make the estimated transfer functions (widest 6 px: wider
        ones let the estimate add image-wide smooth content to a slice).
    iters, lr : Adam iterations and learning rate of the estimate.
    blur_px : Gaussian blur (pixels) of the images for the estimate only (the mixing commutes with it); 0 = none.
        About 1.5 px for noisy inputs.
    """

    LABEL = "estimate"

    model: Optional[str] = None
    sigmas_px: tuple = DEFAULT_SIGMAS
    iters: int = 800
    lr: float = 0.005
    blur_px: float = 0.0

    def __post_init__(self) -> None:
        check_types(self, prefix="estimate.")
        if self.model is not None and self.model not in MIXING_MODELS:
            raise OptionsError(f"option estimate.model must be one of {MIXING_MODELS}, got {self.model!r}")
        self.sigmas_px = tuple(float(s) for s in self.sigmas_px)
        if not self.sigmas_px or min(self.sigmas_px) <= 0:
            raise OptionsError(f"option estimate.sigmas_px must be positive widths in pixels, got {self.sigmas_px}")
        _at_least(self, 1, "iters")
        _at_least(self, 0, "blur_px")
        if not self.lr > 0:
            raise OptionsError(f"option estimate.lr must be > 0, got {self.lr}")


@dataclass
class LearnedOptions(Options):
    """The paper's learnable mixing (``method="paper"``): weight DIP and ghost filters f_ij, and its remedies.

    The defaults are the published recipe. The old default of the learnable mixing (``schedule="balanced"``,
    ``mixing="learn"`` before version 2 of the options) is ``exclusion_balance=True, exclusion_input=1.0`` with
    ``select="crosstalk"`` for kernel filters (docs/method.md, history).

    Attributes
    ----------
    filters : ``"kernel"`` (learnable 7x7 kernels) or ``"dip"`` (shallow 3-level DIPs) for the ghost filters.
    weight_reg, weight_reg_epochs : ``weight_reg * sum (alpha - 0.5)^2`` during the first ``weight_reg_epochs``.
    exclusion_balance : balance gradient magnitudes in the exclusion loss (Gandelsman et al.'s original form; the
        DDIP code dropped it). It cleans slice 1 (section 1).
    exclusion_input, exclusion_input_scales : extra exclusion, with this weight relative to gamma_excl, between each
        slice y_i that receives a high-pass ghost and the *input* image I_j of each slice that receives a low-pass
        ghost, over the first ``exclusion_input_scales`` scales (1, 2, 4 px for 3: the band of high-pass ghosts).
        I_j holds slice j's edges from the first epoch, while y_j learns them only gradually (section 9).
    select_estimate, select_every, select_from, select_guard : the ``select="crosstalk"`` rule: the fit keeps each
        slice that receives a high-pass ghost every ``select_every`` epochs from epoch ``select_from`` on, and returns
        among those correlating >= ``select_guard`` with the final image (and the final image itself) the one scored
        cleanest by the truth-free crosstalk estimate ``select_estimate`` (``"rank"``, ``"partial"`` or ``"plain"``,
        :mod:`ptycho_ddip.separation.select`). Costs one image per kept epoch, slice and member.
    """

    LABEL = "learned"

    filters: str = "kernel"
    weight_reg: float = 0.5
    weight_reg_epochs: int = 100
    exclusion_balance: bool = False
    exclusion_input: float = 0.0
    exclusion_input_scales: int = 3
    select_estimate: str = "rank"
    select_every: int = 50
    select_from: int = 100
    select_guard: float = 0.9

    def __post_init__(self) -> None:
        check_types(self, prefix="learned.")
        _one_of("learned.filters", self.filters, FILTER_TYPES)
        _one_of("learned.select_estimate", self.select_estimate, SELECT_ESTIMATES)
        _at_least(self, 0, "weight_reg", "weight_reg_epochs", "exclusion_input", "select_from")
        _at_least(self, 1, "exclusion_input_scales", "select_every")
        if not 0 <= self.select_guard <= 1:
            raise OptionsError(f"option learned.select_guard must be in [0, 1], got {self.select_guard}")


@dataclass
class ExperimentalOptions(Options):
    """Settings under study or for comparisons; no CLI flags (set them in a config's ``experimental`` table).

    Attributes
    ----------
    lr_decay, lr_step : the Adam learning rate is multiplied by ``lr_decay`` every ``lr_step`` epochs (the paper's).
    noise_scale : amplitude of the uniform noise inputs (0.01 as in the original code).
    channels, skip_channels : image/weight DIP widths per level (DESIGN.md section 3).
    fast : the optimised path (grouped networks, channels-last layout, fused Adam, fused exclusion loss); False =
        the plain eager reference (separate networks, default layout), kept for comparison and benchmarks. Both
        compute the same function (float64: ~1e-10 over a fit); in float32 they diverge like two seeds.
    match_inputs : assign the fitted outputs to the input slices by maximal correlation (undoes a swapped fit);
        ``config["permutations"]`` records what was done. ``alpha`` always refers to the fitted model's slots.
    filter_sigmoid : end shallow-DIP filters in a sigmoid (the original; cannot produce a negative high-pass ghost).
    log_every : epochs between progress updates / host syncs.
    """

    LABEL = "experimental"

    lr_decay: float = 0.9
    lr_step: int = 500
    noise_scale: float = 0.01
    channels: tuple = (8, 16, 32, 64, 128)
    skip_channels: tuple = (0, 0, 0, 4, 4)
    fast: bool = True
    match_inputs: bool = True
    filter_sigmoid: bool = False
    log_every: int = 10

    def __post_init__(self) -> None:
        check_types(self, prefix="experimental.")
        self.channels = tuple(int(c) for c in self.channels)
        self.skip_channels = tuple(int(c) for c in self.skip_channels)
        if len(self.channels) != len(self.skip_channels):
            raise OptionsError("options experimental.channels and experimental.skip_channels need the same length")
        if not (0 < self.lr_decay <= 1 and self.noise_scale > 0):
            raise OptionsError("option experimental.lr_decay must be in (0, 1] and experimental.noise_scale > 0")
        _at_least(self, 1, "lr_step", "log_every")


_GROUP_TYPES = {"estimate": EstimateOptions, "learned": LearnedOptions, "experimental": ExperimentalOptions}


@dataclass
class SeparationOptions(Options):
    """Every option of a DDIP separation: the core a user sets, and the groups ``estimate``, ``learned`` and
    ``experimental`` (module docstring).

    Attributes
    ----------
    method : ``"estimate"`` (default): estimate the mixing first, as isotropic linear filters of a few numbers each,
        from the exclusion of the unmixed slices (:mod:`.mixing`, settings in ``estimate``), then fit the image DIPs
        with that mixing held fixed (:mod:`.fixed`), each network fitting its own unmixed slice (M^-1 I)_i; the ghost
        cannot come back (docs/method.md). ``"paper"``: the paper's learnable mixing
        (weight DIP and ghost filters f_ij, settings in ``learned``), with the published recipe's defaults.
    epochs : fitting epochs (one Adam step each). With ``method="estimate"``, 0 returns the unmixed slices M^-1 I
        themselves (seconds; no network prior, so noise in the inputs stays in the outputs).
    lr : Adam learning rate (decayed as ``experimental.lr_decay`` / ``lr_step`` say).
    gamma_excl : weight of the exclusion loss; None = 0 with ``method="estimate"`` (the exclusion has done its work in
        the estimate; in the fit it only smooths and lets the slice-2 ghost creep back; > 0 uses the balanced,
        input-anchored exclusion of :data:`ESTIMATE_EXCLUSION`), and with ``method="paper"`` 0.5 for kernel filters,
        0.1 for shallow DIPs (:data:`DEFAULT_GAMMA`).
    ghost_kinds : per slice, the band of the ghost it receives (``"lowpass"``/``"highpass"``); None = slice 1
        low-pass, the others high-pass (the paper's assignment). Swap for data where slice 1 is hit by the strong
        scatterer's ghost.
    seed : seeds the noise inputs and the network weights (ensemble member k uses seed + k).
    ensemble : number of members K; the result is their mean, with a per-pixel standard deviation.
    member_batch : members fitted together in one batched (grouped) network; 0 = automatic: all members of this
        process at once on CUDA, one at a time on CPU (where batching was measured no faster per member).
    select : which iterate is returned. ``"final"``: the last one. ``"loss"`` (``method="estimate"`` with
        ``gamma_excl=0`` only, the default there): per slice, the iterate with the smallest mismatch to its own
        unmixed slice over the whole fit, the final state included (it steps over an Adam spike on the last epoch;
        kept on the device). ``"crosstalk"`` (``method="paper"`` only): per slice that receives a high-pass ghost,
        the kept iterate scored cleanest by a truth-free crosstalk estimate (settings ``learned.select_*``). None =
        ``"loss"`` where it applies, else ``"final"``.
    dtype : ``"float32"`` (default) or ``"float64"`` (slow; for exact comparisons).
    device : ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    threads : CPU threads; None = the CPUs this process may use (cgroup quota and affinity), divided among MPI
        ranks on the node.
    monitor_every : epochs between ground-truth metric evaluations (only when truth is given).
    snapshot_every : keep the clean slices every this many epochs (0 = none), for the first member, matched to the
        inputs and in input units (``SeparationResult.snapshots``). Needs no ground truth.
    checkpoint_every : epochs between checkpoints (0 = none); ``checkpoint_path`` where to write them.
    resume : continue from ``checkpoint_path`` if it exists.
    estimate : :class:`EstimateOptions` (a dict is converted); None = its defaults with ``method="estimate"``; an
        error with ``method="paper"``.
    learned : :class:`LearnedOptions`; None = its defaults with ``method="paper"``; an error with
        ``method="estimate"``.
    experimental : :class:`ExperimentalOptions`.

    Examples
    --------
    >>> o = SeparationOptions(method="paper", learned={"filters": "dip"})
    >>> o.gamma_excl, o.select, o.estimate is None
    (0.1, 'final', True)
    >>> SeparationOptions.from_json(o.to_json()) == o
    True
    """

    LABEL = "separation"
    MOVED = MOVED

    method: str = "estimate"
    epochs: int = 2000
    lr: float = 1e-3
    gamma_excl: Optional[float] = None
    ghost_kinds: Optional[tuple] = None
    seed: int = 0
    ensemble: int = 1
    member_batch: int = 0
    select: Optional[str] = None
    dtype: str = "float32"
    device: str = "auto"
    threads: Optional[int] = None
    monitor_every: int = 50
    snapshot_every: int = 0
    checkpoint_every: int = 0
    checkpoint_path: Optional[str] = None
    resume: bool = False
    estimate: Optional[EstimateOptions] = None
    learned: Optional[LearnedOptions] = None
    experimental: ExperimentalOptions = field(default_factory=ExperimentalOptions)

    def __post_init__(self) -> None:
        for name, kind in _GROUP_TYPES.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, kind.from_dict(dict(value)))
        check_types(self)
        _one_of("method", self.method, METHODS)
        self._check_groups()
        if self.ghost_kinds is not None:
            bad = [k for k in self.ghost_kinds if k not in GHOST_KINDS]
            if bad:
                raise OptionsError(f"option ghost_kinds entries must be in {GHOST_KINDS}, got {bad}")
        if self.gamma_excl is None:
            self.gamma_excl = DEFAULT_GAMMA["estimate" if self.method == "estimate" else self.learned.filters]
        _at_least(self, 0, "gamma_excl", "checkpoint_every", "member_batch", "snapshot_every")
        _at_least(self, 0 if self.method == "estimate" else 1, "epochs")
        _at_least(self, 1, "ensemble", "monitor_every")
        if not self.lr > 0:
            raise OptionsError(f"option lr must be > 0, got {self.lr}")
        _one_of("dtype", self.dtype, ("float32", "float64"))
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise OptionsError(f"option device must be one of {DEVICES} or cuda:N, got {self.device!r}")
        if self.threads is not None:
            _at_least(self, 1, "threads")
        self._check_select()
        if (self.checkpoint_every or self.resume) and not self.checkpoint_path:
            raise OptionsError("checkpoint_every/resume need a checkpoint_path")

    def _check_groups(self) -> None:
        if self.method == "estimate":
            if self.learned is not None:
                raise OptionsError("the 'learned' options apply to method='paper' (the learnable mixing) only; "
                                   "remove them or set method='paper'")
            if self.estimate is None:
                self.estimate = EstimateOptions()
        else:
            if self.estimate is not None:
                raise OptionsError("the 'estimate' options apply to method='estimate' (the estimated mixing) only; "
                                   "remove them or set method='estimate'")
            if self.learned is None:
                self.learned = LearnedOptions()

    def _check_select(self) -> None:
        if self.select is None:
            self.select = "loss" if self.method == "estimate" and self.gamma_excl == 0 else "final"
        _one_of("select", self.select, SELECT_RULES)
        if self.select == "loss" and not (self.method == "estimate" and self.gamma_excl == 0):
            raise OptionsError("select='loss' needs method='estimate' with gamma_excl=0 (where each slice's own "
                               "mismatch scores it); use select='final' otherwise")
        if self.select == "crosstalk" and self.method != "paper":
            raise OptionsError("select='crosstalk' needs method='paper' (its settings are learned.select_*); the "
                               "estimated mixing's fit does not drift back: use select='loss' or 'final'")

    @property
    def filters(self) -> Optional[str]:
        """The ghost filter type of ``method="paper"`` (``learned.filters``); None with the estimated mixing."""
        return self.learned.filters if self.learned is not None else None

    def updated(self, **changes: Any) -> "SeparationOptions":
        """A copy with ``changes``: group tables (dicts or group instances) are merged into the current group;
        a change of ``method`` drops the other method's group and re-derives ``gamma_excl`` and ``select`` unless
        they are given.

        >>> SeparationOptions().updated(method="paper", learned={"filters": "dip"}).gamma_excl
        0.1
        """
        d = self.to_dict()
        if "method" in changes and changes["method"] != self.method:
            d.pop("estimate" if changes["method"] == "paper" else "learned", None)
            for name in ("gamma_excl", "select"):
                d[name] = None
        for key, value in changes.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            if key in GROUPS and isinstance(value, Mapping) and isinstance(d.get(key), dict):
                value = {**d[key], **value}
            d[key] = value
        return type(self).from_dict(d)
