"""Options of a multislice reconstruction: :class:`ReconstructionOptions` (a validated dataclass with a strict JSON
round trip, unknown keys are errors) and the choices it accepts (losses, initial guesses, parameterisations,
devices, dtypes), with :data:`RESUME_FREE`, the options a resumed run may change. The loop that uses them is
:mod:`.reconstruct`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import _options as opt
from .propagation import KINDS
from .regularizers import DEFAULT_WEIGHTS, DEPTH_REGS

LOSSES = ("amplitude", "poisson")
INITS = ("random", "constant", "xrf")
PARAMETERIZATIONS = ("phase", "complex")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("complex64", "complex128")
#: options that may differ between a checkpoint and the run that resumes it
RESUME_FREE = ("epochs", "resume", "checkpoint_every", "checkpoint_path", "device", "chunk_size")


@dataclass
class ReconstructionOptions:
    """Options of :func:`reconstruct` (validated on construction; :meth:`from_dict` rejects unknown keys).

    Attributes
    ----------
    epochs : passes over all positions.
    batch_size : global minibatch size (positions per Adam step, summed over all ranks).
    chunk_size : positions per forward/backward call inside a rank's share of a minibatch; the gradients of the
        chunks are accumulated, so the step is the same (to float rounding). Smaller chunks keep the FFT working
        set in cache and cut peak memory; None = about 4 MiB of complex wave per chunk (16 positions at 128^2,
        4 at 256^2 in complex64), measured fastest on CPU (``benchmarks/bench_forward.py --compare``); on CUDA
        None = the whole share (one call).
    lr_object : Adam step of the object parameters (radians / nepers with ``parameterization="phase"``), > 0.
    lr_probe : Adam step of the probe (relative to its initial peak amplitude).
    lr_schedule : ``"cosine"`` (default) or ``"constant"``: with cosine both steps follow lr * (0.01 + 0.99 * (1 +
        cos(pi e / E)) / 2) over the run's epochs E, so the last epochs converge instead of oscillating at the
        minibatch noise level (a final object, and a final data loss, that do not depend on where the oscillation
        stopped). The defaults (300 epochs, batches of 16, lr 0.02, cosine) bring the data loss within 10 % of the true
        object's on every case of the crosstalk benchmark's small matrix (``docs/crosstalk_benchmark.md``), where a
        constant step leaves it 1.7-4.9 times above it after 50 epochs at 1e7 photons per position. The schedule
        depends on ``epochs``: a run resumed with another ``epochs`` continues on the new schedule.
    optimize_probe : refine the probe; ``probe_delay_epochs`` : epochs before the probe starts to move.
    loss : ``"amplitude"`` or ``"poisson"``.
    init : ``"random"`` (unit amplitude, Gaussian phase of std ``init_noise`` rad), ``"constant"`` (ones),
        ``"xrf"`` (XRF-seeded, see :mod:`.xrf`, needs ``xrf_elements``) or a path to an object guess
        (reconstruction HDF5, ``FILE.h5:/dataset`` or ``.npy``).
    init_noise : phase standard deviation (rad) of the random start.
    n_slices : number of slices; None = from ``slice_pos_m`` or the dataset.
    slice_pos_m : slice positions (m) overriding the dataset's.
    object_shape : (H, W) overriding the dataset's (default: dataset, else the scanned extent).
    propagation : ``"exact"`` or ``"paraxial"``.
    parameterization : ``"phase"`` (phase and log-amplitude, default) or ``"complex"`` (real and imaginary parts).
    xrf_elements : element -> 0-based slice index for ``init="xrf"``, e.g. ``{"Ni": 1}``.
    xrf_epochs : epochs of the single-slice reconstruction that the XRF seeding starts from.
    probe_fwhm_m : FWHM of the Gaussian probe guess when the dataset holds no probe (default: window / 4).
    seed : seed of the initial guess and of the minibatch order.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` (MPI rank r: ``cuda:(r % device_count)``) or ``"cuda:N"``;
        dtype : ``"complex64"`` or ``"complex128"``.
    checkpoint_every : write a checkpoint every N epochs (0 = never); checkpoint_path : where.
    resume : continue from ``checkpoint_path`` if it exists.
    depth_reg : in-loop depth regulariser (:mod:`.regularizers`): ``"none"`` (default), ``"kz"`` (missing-wedge
        filter of the slices' phase and log-amplitude every ``depth_reg_every`` epochs) or ``"zcorr"`` (squared
        inter-slice Pearson correlation of the phases added to every minibatch's loss; the recorded loss stays the
        data loss).
    depth_reg_weight : ``"kz"``: the filter's beta (grid units; W = 1/2 on |kz| = |kr| / beta), ``"zcorr"``: the
        penalty's weight; None = 0.1 for kz, 1.0 for zcorr.
    depth_reg_every : epochs between two applications of the kz filter.
    """

    epochs: int = 300
    batch_size: int = 16
    chunk_size: int | None = None
    lr_object: float = 2e-2
    lr_schedule: str = "cosine"
    lr_probe: float = 1e-2
    optimize_probe: bool = False
    probe_delay_epochs: int = 0
    loss: str = "amplitude"
    init: str = "random"
    init_noise: float = 1e-2
    n_slices: int | None = None
    slice_pos_m: list | None = None
    object_shape: tuple | None = None
    propagation: str = "exact"
    parameterization: str = "phase"
    xrf_elements: dict | None = None
    xrf_epochs: int = 20
    probe_fwhm_m: float | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "complex64"
    checkpoint_every: int = 0
    checkpoint_path: str | None = None
    resume: bool = False
    depth_reg: str = "none"
    depth_reg_weight: float | None = None
    depth_reg_every: int = 1

    def __post_init__(self) -> None:
        opt.check_int("epochs", self.epochs, 0)
        opt.check_int("batch_size", self.batch_size, 1)
        if self.chunk_size is not None:
            opt.check_int("chunk_size", self.chunk_size, 1)
        opt.check_positive("lr_object", self.lr_object)
        opt.check_positive("lr_probe", self.lr_probe, allow_zero=True)
        opt.check_bool("optimize_probe", self.optimize_probe)
        opt.check_int("probe_delay_epochs", self.probe_delay_epochs, 0)
        opt.check_choice("loss", self.loss, LOSSES)
        opt.check_choice("lr_schedule", self.lr_schedule, ("constant", "cosine"))
        if not isinstance(self.init, str) or not self.init:
            raise opt.OptionsError(f"option init must be one of {INITS} or a file path, got {self.init!r}")
        opt.check_positive("init_noise", self.init_noise, allow_zero=True)
        opt.check_int("n_slices", self.n_slices, 1, allow_none=True)
        if self.slice_pos_m is not None:
            try:
                self.slice_pos_m = [float(v) for v in np.atleast_1d(self.slice_pos_m)]
            except (TypeError, ValueError) as exc:
                raise opt.OptionsError(f"option slice_pos_m must be a list of numbers (m), got "
                                       f"{self.slice_pos_m!r}") from exc
            if self.n_slices is not None and len(self.slice_pos_m) != self.n_slices:
                raise opt.OptionsError(f"slice_pos_m has {len(self.slice_pos_m)} entries but n_slices is "
                                       f"{self.n_slices}")
            pos = np.asarray(self.slice_pos_m)
            if not np.all(np.isfinite(pos)) or np.any(np.diff(pos) <= 0):
                raise opt.OptionsError(f"slice_pos_m must be finite and strictly increasing, got {self.slice_pos_m}")
        if self.object_shape is not None:
            shp = tuple(self.object_shape)
            if len(shp) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shp):
                raise opt.OptionsError(f"option object_shape must be two positive integers, got {self.object_shape!r}")
            self.object_shape = shp
        opt.check_choice("propagation", self.propagation, KINDS)
        opt.check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        if self.xrf_elements is not None:
            if not isinstance(self.xrf_elements, Mapping) or not self.xrf_elements or not all(
                    isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    for k, v in self.xrf_elements.items()):
                raise opt.OptionsError(f"option xrf_elements must map element names to 0-based slice indices, "
                                       f"e.g. {{'Ni': 1}}, got {self.xrf_elements!r}")
            self.xrf_elements = dict(self.xrf_elements)
        if self.init == "xrf" and not self.xrf_elements:
            raise opt.OptionsError("init='xrf' needs xrf_elements, e.g. {'Ni': 1} (element -> 0-based slice index)")
        opt.check_int("xrf_epochs", self.xrf_epochs, 1)
        opt.check_positive("probe_fwhm_m", self.probe_fwhm_m, allow_none=True)
        opt.check_int("seed", self.seed, 0)
        if not (isinstance(self.device, str) and self.device.startswith("cuda:") and self.device[5:].isdigit()):
            opt.check_choice("device", self.device, DEVICES)  # or a numbered GPU, cuda:N
        opt.check_choice("dtype", self.dtype, DTYPES)
        opt.check_int("checkpoint_every", self.checkpoint_every, 0)
        if self.checkpoint_path is not None and not isinstance(self.checkpoint_path, str):
            self.checkpoint_path = os.fspath(self.checkpoint_path)
        opt.check_bool("resume", self.resume)
        if (self.checkpoint_every > 0 or self.resume) and not self.checkpoint_path:
            raise opt.OptionsError("checkpoint_every > 0 or resume=True needs checkpoint_path")
        opt.check_choice("depth_reg", self.depth_reg, DEPTH_REGS)
        opt.check_positive("depth_reg_weight", self.depth_reg_weight, allow_none=True)
        if self.depth_reg_weight is None and self.depth_reg != "none":
            self.depth_reg_weight = DEFAULT_WEIGHTS[self.depth_reg]
        opt.check_int("depth_reg_every", self.depth_reg_every, 1)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any] | None = None, **overrides: Any) -> "ReconstructionOptions":
        """From a dict (e.g. parsed JSON) plus overrides; unknown keys raise :class:`OptionsError`."""
        return opt.from_mapping(cls, mapping, **overrides)

    @classmethod
    def from_json(cls, text: str) -> "ReconstructionOptions":
        import json

        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        return opt.to_dict(self)

    def to_json(self) -> str:
        return opt.to_json(self)
