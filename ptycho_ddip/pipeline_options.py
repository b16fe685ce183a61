"""Options of the pipeline (:class:`PipelineOptions`): the two reconstruction passes, the separation and how they
are joined; validated, JSON round trip, saved as ``OUTDIR/config.json``."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .multislice._options import OptionsError
from .optionsbase import as_options, from_mapping
from .multislice.reconstruct import ReconstructionOptions
from .separation.options import SeparationOptions

__all__ = ["PipelineOptions", "PARTS", "SEEDS", "STAGES", "RUN_CONTROL"]

PARTS = ("phase", "magnitude")
SEEDS = ("totals", "separated", "ghost_removed")
STAGES = ("pass1", "separation", "pass2", "report")
#: options that may change between runs of the same OUTDIR (they do not change the result)
RUN_CONTROL = ("checkpoint_every", "separation_checkpoint_every", "pass1.device", "pass2.device",
               "separation.device", "separation.threads", "separation.experimental.log_every")
_MANAGED = ("checkpoint_every", "checkpoint_path", "resume")


@dataclass
class PipelineOptions:
    """Options of :func:`run_pipeline` (validated; unknown keys are errors; JSON round trip).

    Attributes
    ----------
    pass1 : :class:`ReconstructionOptions` of the first reconstruction (a dict is converted).
    separation : :class:`SeparationOptions` of the DDIP separation.
    pass2 : :class:`ReconstructionOptions` of the second reconstruction (its ``init`` is replaced by the seed built
        from the separation and must stay at its default).
    part : ``"phase"`` (default) or ``"magnitude"``: which part of the slices is separated.
    pass2_seed : what of the separation seeds pass 2: ``"totals"`` (default: each separated slice with everything
        of it that pass 1 put into the other slices; the slices add up to pass 1's, so pass 2 starts from the summed
        phase the data determine, split between the slices as the separation found), ``"separated"`` (the DDIP's
        clean images in each input's units, the paper's choice: a slice that pass 1 split in half keeps only its
        half) or ``"ghost_removed"`` (pass 1's slices minus the fitted model's ghost estimate).
    crop_to_scan : separate only a box around the scanned region (default True; False: the whole object).
    scan_threshold : the scanned region is where the summed probe intensity exceeds this fraction of its maximum
        (default 0.1); its bounding box (the *scanned box*) is where the metrics are taken and the verdict decides.
    separation_threshold : the separation sees the bounding box of the pixels whose summed probe intensity exceeds
        this fraction of its maximum (default 0.01: the scanned box and the probe's tails around it; always at
        least the scanned box). On the crosstalk benchmark the wider view turned a separation that lost the strong
        slice (0.5 depth of field, separating the 0.1 box) into one that took the weak slice from 9.8 to 1.1.
    checkpoint_every : reconstruction epochs between checkpoints (0 = none).
    separation_checkpoint_every : DDIP epochs between checkpoints (0 = none).

    Checkpoint paths are managed by the pipeline: ``checkpoint_every``, ``checkpoint_path`` and ``resume`` of the
    stage options must stay at their defaults.

    Examples
    --------
    >>> o = PipelineOptions.from_dict({"pass1": {"epochs": 3}, "separation": {"epochs": 20}, "part": "phase"})
    >>> o.pass1.epochs, o.separation.epochs, o.pass2.epochs
    (3, 20, 300)
    >>> PipelineOptions.from_json(o.to_json()) == o
    True
    """

    pass1: ReconstructionOptions = field(default_factory=ReconstructionOptions)
    separation: SeparationOptions = field(default_factory=SeparationOptions)
    pass2: ReconstructionOptions = field(default_factory=ReconstructionOptions)
    part: str = "phase"
    pass2_seed: str = "totals"
    crop_to_scan: bool = True
    scan_threshold: float = 0.1
    separation_threshold: float = 0.01
    checkpoint_every: int = 5
    separation_checkpoint_every: int = 200

    def __post_init__(self) -> None:
        for name, cls in (("pass1", ReconstructionOptions), ("separation", SeparationOptions),
                          ("pass2", ReconstructionOptions)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                try:
                    value = cls.from_dict(dict(value))
                except (TypeError, ValueError) as exc:
                    raise OptionsError(f"{name}: {exc}") from None
            elif not isinstance(value, cls):
                raise OptionsError(f"option {name} must be a {cls.__name__} or a dict of its options, got "
                                   f"{type(value).__name__}")
            setattr(self, name, value)
            defaults = cls()
            for key in _MANAGED:
                if getattr(value, key) != getattr(defaults, key):
                    raise OptionsError(f"{name}.{key} is managed by the pipeline (checkpoints go to OUTDIR); remove "
                                       f"it and set the pipeline's checkpoint_every / separation_checkpoint_every")
        if self.pass2.init != ReconstructionOptions().init:
            raise OptionsError(f"pass2.init={self.pass2.init!r}: the second pass starts from the separated slices; "
                               f"remove pass2.init")
        if self.part not in PARTS:
            raise OptionsError(f"option part={self.part!r} is not one of {PARTS}")
        if self.pass2_seed not in SEEDS:
            raise OptionsError(f"option pass2_seed={self.pass2_seed!r} is not one of {SEEDS}")
        if not isinstance(self.crop_to_scan, bool):
            raise OptionsError(f"option crop_to_scan must be true or false, got {self.crop_to_scan!r}")
        for name in ("scan_threshold", "separation_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < 1):
                raise OptionsError(f"option {name} must be in (0, 1), got {v!r}")
        for name in ("checkpoint_every", "separation_checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise OptionsError(f"option {name} must be an integer >= 0, got {v!r}")

    @classmethod
    def from_dict(cls, mapping: Optional[Mapping[str, Any]] = None, **overrides: Any) -> "PipelineOptions":
        """From a dict (e.g. parsed JSON/TOML; the stage tables may be partial) plus overrides; unknown keys raise
        :class:`~ptycho_ddip.multislice.OptionsError`."""
        return from_mapping(cls, mapping, **overrides)

    @classmethod
    def from_json(cls, text: str) -> "PipelineOptions":
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        """Plain-JSON dict: the pipeline's options plus one table per stage."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("pass1", "separation", "pass2"):
            out[name] = json.loads(getattr(self, name).to_json())
        return out

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is None)


def _as_options(options) -> PipelineOptions:
    return as_options(PipelineOptions, options)


# ------------------------------------------------------------------------------------------------ array helpers
