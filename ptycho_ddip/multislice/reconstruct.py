"""Multislice ptychographic reconstruction by automatic differentiation and Adam.

Design
------
* :class:`ReconstructionOptions` (validated dataclass, JSON round trip, unknown keys are errors) holds every knob.
* The forward model is :class:`.forward.MultisliceForward`; this module only owns the parameters, the loss and the
  loop (:class:`Reconstructor`).
* **Parameterisation.** The object is stored as its phase phi and log-amplitude a per slice, O = exp(a + i phi), and
  Adam updates (phi, a) (``parameterization="phase"``, the default). Reasons: (1) x-ray objects are weak, nearly
  pure phase objects (|O| ~ 0.9-1), and Adam's per-parameter step ~ lr then means "lr radians of phase" and "lr
  nepers of absorption", two physically meaningful, decoupled scales, whereas on (Re O, Im O) the same step mixes
  phase and amplitude errors and depends on |O|; (2) |O| = exp(a) > 0 always; (3) the phase is kept unwrapped, so
  strong phase objects do not get stuck at 2 pi branch cuts and the phase error against ground truth is measured
  directly. ``parameterization="complex"`` optimises (Re O, Im O) instead. The probe is optimised on its real and
  imaginary parts, scaled by its initial peak amplitude so that ``lr_probe`` is a relative step.
* **Loss.** Per position j, the mean over detector pixels of (|U_j| - sqrt(I_j))^2 (``"amplitude"``, Gaussian noise
  on amplitudes) or of I'_j - I_j log I'_j + I_j log I_j - I_j (``"poisson"``, the Poisson deviance / 2). The loss
  of a minibatch B is  sum_{j in B} loss_j / |B|,  a *sum* over positions divided by the *global* batch size, so the
  gradient of a minibatch is exactly the sum of the gradients of any partition of it.
* **Data parallelism (MPI-ready).** Every epoch draws a permutation of the positions from a ``torch.Generator``
  seeded by (seed, epoch) and cuts it into global minibatches of ``batch_size`` in that fixed order. With ``size``
  ranks, rank ``r`` evaluates the ``r``-th of ``size`` contiguous, nearly equal parts of each global minibatch; after
  its backward pass the hook ``grad_allreduce(tensors)`` is called with ``[grad of each parameter..., loss]`` and
  must sum them across ranks in place (e.g. ``MPI.Allreduce`` on contiguous buffers); then every rank takes the
  same Adam step. The default (``grad_allreduce=None``, rank 0 of 1) is serial and imports no MPI.
* **Checkpoints.** Every ``checkpoint_every`` epochs (and at the end) the parameters, Adam states and loss history
  are written atomically to ``checkpoint_path`` (``torch.save``). ``resume=True`` continues from it; since the
  minibatch order depends only on (seed, epoch), a resumed run equals an uninterrupted one exactly.

Modules: :mod:`.reconstruct_options` (:class:`ReconstructionOptions`), :mod:`.reconstruct_inputs` (checks of the
dataset, the probe notice), :mod:`.reconstruct_result` (:class:`ReconstructionResult`); this module keeps the loop
(:class:`Reconstructor`, :func:`reconstruct`) and the file entry point (:func:`reconstruct_file`) and re-exports
the options, the result and the checks.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .._version import __version__
from ..atomic import InputError, atomic_write
from ..optionsbase import as_options
from ..io.dataset import DiffractionDataset
from ..progress import progress_bar
from .forward import MultisliceForward
from .physics import wavelength_m
from .probe import gaussian_probe, supplied_probe
from .reconstruct_inputs import check_dataset, probe_notice, resolve_object_shape, resolve_slice_positions
from .reconstruct_options import INITS, RESUME_FREE, ReconstructionOptions
from .reconstruct_result import ReconstructionResult
from .regularizers import kz_filter, kz_filter_weights, slice_correlation_penalty
from .xrf import illuminated_mask, xrf_initial_object

GradAllreduce = Callable[[list], None]


# ------------------------------------------------------------------------------------------------ the loop
def epoch_permutation(n_positions: int, seed: int, epoch: int) -> torch.Tensor:
    """The fixed, seeded order of positions in ``epoch`` (independent of ranks and of resuming)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) + 1)
    return torch.randperm(n_positions, generator=g)


def global_minibatches(n_positions: int, batch_size: int, seed: int, epoch: int) -> list:
    """The global minibatches of an epoch: consecutive chunks of :func:`epoch_permutation`."""
    return list(torch.split(epoch_permutation(n_positions, seed, epoch), batch_size))


def rank_share(batch: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous part of a global minibatch (``size`` nearly equal parts, fixed order)."""
    n = batch.numel()
    lo, hi = (n * rank) // size, (n * (rank + 1)) // size
    return batch[lo:hi]


class Reconstructor:
    """Parameters, loss and Adam loop of one reconstruction (see the module docstring).

    Parameters
    ----------
    dataset : the measured data.
    options : :class:`ReconstructionOptions`.
    initial_object : complex (n_slices, H, W) start (overrides ``options.init``).
    rank, size : this process's rank and the number of ranks (data parallelism).
    grad_allreduce : in-place sum across ranks of ``[grads..., loss]``; None when serial.
    """

    def __init__(self, dataset: DiffractionDataset, options: ReconstructionOptions, initial_object=None,
                 rank: int = 0, size: int = 1, grad_allreduce: GradAllreduce | None = None):
        from ..runtime import resolve_device

        if not (0 <= rank < size):
            raise ValueError(f"rank {rank} is not in [0, {size})")
        check_dataset(dataset, options)
        self.dataset, self.options = dataset, options
        self.rank, self.size, self.grad_allreduce = int(rank), int(size), grad_allreduce
        self.device = resolve_device(options.device, rank)
        self.cdtype = getattr(torch, options.dtype)
        self.rdtype = torch.float64 if self.cdtype == torch.complex128 else torch.float32
        self.slice_pos_m = resolve_slice_positions(dataset, options)
        self.object_shape = resolve_object_shape(dataset, options)
        self.forward_model = MultisliceForward(dataset.detector_shape, self.slice_pos_m,
                                               wavelength_m(dataset.energy_ev), dataset.pixel_size_m,
                                               kind=options.propagation, free_prop_m=dataset.free_prop_m)
        # positions stay on the CPU: the forward model checks and splits them there (no device sync per minibatch)
        self.positions = torch.as_tensor(np.asarray(dataset.positions_px, dtype=np.float64))
        data = torch.as_tensor(np.asarray(dataset.intensities, dtype=np.float32), device=self.device)
        if self.forward_model.free_propagator is None:  # compare with unshifted far fields (saves an fftshift)
            data = torch.fft.ifftshift(data, dim=(-2, -1))
        self.measured = data.to(self.rdtype)
        self.measured_amplitude = torch.sqrt(self.measured)
        self.extra: dict = {}
        if self.resuming:  # the checkpoint replaces the start: skip a possibly expensive (XRF) initialisation
            start = np.ones((self.slice_pos_m.size, *self.object_shape), dtype=np.complex128)
        else:
            start = self._initial_object(initial_object)
        self._init_parameters(start, self._initial_probe())
        self._zcorr_mask = self._scanned_mask() if options.depth_reg == "zcorr" else None
        self._kz_weights = None
        self.loss_history: list = []
        self.epoch = 0

    @property
    def resuming(self) -> bool:
        """True when ``options.resume`` is set and the checkpoint file exists."""
        opts = self.options
        return bool(opts.resume and opts.checkpoint_path and os.path.exists(opts.checkpoint_path))

    # ------------------------------------------------------------------------------------------ initial state
    def _initial_object(self, initial_object) -> np.ndarray:
        opts, n_slices = self.options, self.slice_pos_m.size
        H, W = self.object_shape
        if initial_object is None and opts.init not in INITS:
            from ..io import read_object_guess

            initial_object = read_object_guess(opts.init, n_slices)
        if initial_object is not None:
            guess = np.asarray(initial_object)
            if guess.ndim == 2:
                guess = guess[None]
            if guess.shape != (n_slices, H, W):
                raise InputError(f"{opts.init if opts.init not in INITS else 'initial object'}: has shape "
                                 f"{guess.shape} but the reconstruction needs ({n_slices}, {H}, {W}); give a guess "
                                 f"with {n_slices} slices of {H}x{W} or change n_slices/object_shape")
            if not np.all(np.isfinite(guess)):
                raise InputError("initial object: contains NaN or Inf; give a finite object guess")
            return guess.astype(np.complex128)
        if opts.init == "constant":
            return np.ones((n_slices, H, W), dtype=np.complex128)
        if opts.init == "random":
            g = torch.Generator().manual_seed(int(opts.seed))
            phase = torch.randn((n_slices, H, W), generator=g, dtype=torch.float64) * opts.init_noise
            return np.exp(1j * phase.numpy())
        guess, info = xrf_initial_object(self.dataset, opts, self.slice_pos_m, self.object_shape, Reconstructor)
        self.extra.update(info)
        return guess

    def _initial_probe(self) -> torch.Tensor:
        ds, opts = self.dataset, self.options
        if ds.probe is not None:
            return supplied_probe(ds.probe, ds.detector_shape, dtype=torch.complex128)
        photons = float(np.mean(np.sum(ds.intensities, axis=(1, 2), dtype=np.float64)))
        fwhm = opts.probe_fwhm_m or ds.pixel_size_m * min(ds.detector_shape) / 4.0
        return gaussian_probe(ds.detector_shape, fwhm, ds.pixel_size_m, photons=max(photons, 1e-12),
                              dtype=torch.complex128)

    def _init_parameters(self, obj: np.ndarray, probe: torch.Tensor) -> None:
        o = torch.as_tensor(obj, dtype=torch.complex128)
        if self.options.parameterization == "phase":
            a, b = torch.log(torch.clamp(o.abs(), min=1e-12)), torch.angle(o)
        else:
            a, b = o.real, o.imag
        self.obj_a = a.to(self.rdtype).to(self.device).requires_grad_(True)
        self.obj_b = b.to(self.rdtype).to(self.device).requires_grad_(True)
        self.probe_scale = float(probe.abs().max())
        p = probe / self.probe_scale
        self.probe_re = p.real.to(self.rdtype).to(self.device).requires_grad_(self.options.optimize_probe)
        self.probe_im = p.imag.to(self.rdtype).to(self.device).requires_grad_(self.options.optimize_probe)
        self.object_optimizer = torch.optim.Adam([self.obj_a, self.obj_b], lr=self.options.lr_object)
        self.probe_optimizer = torch.optim.Adam([self.probe_re, self.probe_im], lr=self.options.lr_probe)

    def _scanned_mask(self) -> torch.Tensor:
        """Pixels whose summed initial-probe intensity over the scan exceeds 10 % of its maximum (bool (H, W))."""
        probe = torch.complex(self.probe_re, self.probe_im).detach().cpu().numpy()
        mask = illuminated_mask(self.positions.cpu().numpy(), probe, self.object_shape, 0.1)
        return torch.as_tensor(mask, device=self.device)

    # -------------------------------------------------------------------------------------------- model
    @property
    def parameters(self) -> list:
        return [self.obj_a, self.obj_b, self.probe_re, self.probe_im]

    def object(self) -> torch.Tensor:
        """The current object, complex (n_slices, H, W) (differentiable)."""
        if self.options.parameterization == "phase":
            return torch.polar(torch.exp(self.obj_a), self.obj_b)
        return torch.complex(self.obj_a, self.obj_b)

    def phase_and_log_amplitude(self) -> tuple:
        """(phase, log-amplitude) of the current object, each real (n_slices, H, W) (differentiable)."""
        if self.options.parameterization == "phase":
            return self.obj_b, self.obj_a
        o = self.object()
        return torch.angle(o), torch.log(torch.clamp(o.abs(), min=1e-12))

    def depth_penalty(self) -> torch.Tensor:
        """The ``zcorr`` term added to each minibatch's loss: weight * sum_{i<j} rho(phase_i, phase_j)^2."""
        phase, _ = self.phase_and_log_amplitude()
        return self.options.depth_reg_weight * slice_correlation_penalty(phase, self._zcorr_mask)

    def apply_kz_filter(self) -> None:
        """Replace the object's phase and log-amplitude by their missing-wedge-filtered stacks (in place)."""
        with torch.no_grad():
            phase, log_amp = (t.detach() for t in self.phase_and_log_amplitude())
            if self._kz_weights is None:
                self._kz_weights = kz_filter_weights(phase.shape[0], phase.shape[1:], self.options.depth_reg_weight,
                                                     dtype=phase.dtype, device=phase.device)
            phase = kz_filter(phase, self.options.depth_reg_weight, self._kz_weights)
            log_amp = kz_filter(log_amp, self.options.depth_reg_weight, self._kz_weights)
            if self.options.parameterization == "phase":
                self.obj_b.copy_(phase)
                self.obj_a.copy_(log_amp)
            else:
                o = torch.polar(torch.exp(log_amp), phase)
                self.obj_a.copy_(o.real)
                self.obj_b.copy_(o.imag)

    def probe(self) -> torch.Tensor:
        """The current probe, complex (h, w) (differentiable)."""
        return torch.complex(self.probe_re, self.probe_im) * self.probe_scale

    @property
    def chunk_size(self) -> int:
        """Positions per forward/backward call (see ``ReconstructionOptions.chunk_size``)."""
        if self.options.chunk_size is not None:
            return int(self.options.chunk_size)
        if self.device.type == "cuda":
            return max(1, self.options.batch_size)
        h, w = self.forward_model.probe_shape
        itemsize = 16 if self.options.dtype == "complex128" else 8
        return max(1, (4 << 20) // (itemsize * h * w))

    def position_losses(self, indices: torch.Tensor) -> torch.Tensor:
        """Loss of each position in ``indices`` (mean over detector pixels), shape (len(indices),)."""
        wave = self.forward_model.detector_waves(self.object(), self.probe(), self.positions[indices.cpu()],
                                                 centred=False)
        indices = indices.to(self.device)
        if self.options.loss == "amplitude":
            return ((wave.abs() - self.measured_amplitude[indices]) ** 2).mean(dim=(-2, -1))
        pred = wave.real**2 + wave.imag**2
        meas = self.measured[indices]
        dev = pred - meas * torch.log(pred + 1e-8) + torch.xlogy(meas, meas) - meas
        return dev.mean(dim=(-2, -1))

    def minibatch_gradients(self, batch: torch.Tensor) -> tuple:
        """This rank's contribution to the gradient of one global minibatch.

        Computes sum_{j in share} loss_j / |batch| for this rank's share and back-propagates it; returns
        (list of gradients, loss contribution as a 1-element tensor). Summing the contributions of all ranks gives
        the gradient of the whole minibatch.
        """
        for p in self.parameters:
            p.grad = None
        share = rank_share(batch, self.rank, self.size)  # CPU indices (positions live there)
        if share.numel():
            loss_value = torch.zeros(1, dtype=torch.float64, device=self.device)
            for chunk in torch.split(share, self.chunk_size):
                loss = self.position_losses(chunk).sum() / batch.numel()
                loss.backward()
                loss_value += loss.detach().to(torch.float64)
        else:
            loss_value = torch.zeros(1, dtype=torch.float64, device=self.device)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
        return grads, loss_value

    def step(self, batch: torch.Tensor) -> float:
        """One Adam step on a global minibatch; returns the minibatch loss (summed over ranks)."""
        return float(self._step(batch))

    def _step(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`step` with the loss left on the device (a 1-element float64 tensor): no host sync."""
        grads, loss_value = self.minibatch_gradients(batch)
        if self.grad_allreduce is not None:
            self.grad_allreduce(grads + [loss_value])
        if self.options.depth_reg == "zcorr" and self.obj_b.shape[0] > 1:  # after the sum over ranks: once per rank
            extra = torch.autograd.grad(self.depth_penalty(), [self.obj_a, self.obj_b], allow_unused=True)
            grads = [g if e is None else g + e for g, e in zip(grads, list(extra) + [None, None])]
        for p, g in zip(self.parameters, grads):
            p.grad = g
        self.object_optimizer.step()
        if self.options.optimize_probe and self.epoch >= self.options.probe_delay_epochs:
            self.probe_optimizer.step()
        return loss_value * batch.numel()

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of both learning rates at ``epoch`` (``ReconstructionOptions.lr_schedule``)."""
        if self.options.lr_schedule == "constant" or self.options.epochs <= 1:
            return 1.0
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * epoch / self.options.epochs))

    def run_epoch(self) -> float:
        """One pass over all positions; returns the mean loss per position."""
        f = self.lr_factor(self.epoch)
        for optim, lr in ((self.object_optimizer, self.options.lr_object),
                          (self.probe_optimizer, self.options.lr_probe)):
            for group in optim.param_groups:
                group["lr"] = lr * f
        total = torch.zeros(1, dtype=torch.float64, device=self.device)
        n = self.positions.shape[0]
        for batch in global_minibatches(n, self.options.batch_size, self.options.seed, self.epoch):
            total += self._step(batch)
        self.epoch += 1
        if self.options.depth_reg == "kz" and self.epoch % self.options.depth_reg_every == 0:
            self.apply_kz_filter()
        mean = float(total) / n  # the epoch's one host sync
        self.loss_history.append(mean)
        return mean

    # -------------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "loss_history": list(self.loss_history),
                "parameters": [p.detach().cpu().clone() for p in self.parameters],
                "probe_scale": self.probe_scale,
                "object_optimizer": self.object_optimizer.state_dict(),
                "probe_optimizer": self.probe_optimizer.state_dict(),
                "options": self.options.to_dict(), "extra": self.extra, "version": __version__}

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        saved = {k: v for k, v in state["options"].items() if k not in RESUME_FREE}
        now = {k: v for k, v in self.options.to_dict().items() if k not in RESUME_FREE}
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            raise InputError(f"{source}: was written with different options {diff}; resume with the same options "
                             f"(only {list(RESUME_FREE)} may change) or delete the checkpoint")
        with torch.no_grad():
            for p, v in zip(self.parameters, state["parameters"]):
                if tuple(p.shape) != tuple(v.shape):
                    raise InputError(f"{source}: parameter shapes {tuple(v.shape)} do not match {tuple(p.shape)}")
                p.copy_(v.to(p.device))
        self.probe_scale = float(state["probe_scale"])
        self.object_optimizer.load_state_dict(state["object_optimizer"])
        self.probe_optimizer.load_state_dict(state["probe_optimizer"])
        self.epoch = int(state["epoch"])
        self.loss_history = list(state["loss_history"])
        self.extra = dict(state.get("extra", {}))

    def save_checkpoint(self, path: str) -> None:
        """Write the state atomically (temporary file in the same directory, then rename). Rank 0 only."""
        if self.rank != 0:
            return
        with atomic_write(path, overwrite=True) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_checkpoint(self, path: str) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is an input error
            raise InputError(f"{path}: is not a readable checkpoint ({exc}); delete it or set resume=False") from exc
        self.load_state_dict(state, path)

    # -------------------------------------------------------------------------------------------- driver
    def run(self, progress: bool = True, callback: Callable[[int, float], None] | None = None
            ) -> "ReconstructionResult":
        """Run (or resume) until ``options.epochs``; returns the result."""
        opts = self.options
        if self.resuming and self.epoch == 0:
            self.load_checkpoint(opts.checkpoint_path)
        bar = progress_bar(opts.epochs, "reconstruct", progress if self.rank == 0 else False, initial=self.epoch)
        while self.epoch < opts.epochs:
            loss = self.run_epoch()
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            bar.update(1)
            if callback is not None:
                callback(self.epoch, loss)
            if opts.checkpoint_every and self.epoch % opts.checkpoint_every == 0:
                self.save_checkpoint(opts.checkpoint_path)
        bar.close()
        if opts.checkpoint_path and opts.checkpoint_every:
            self.save_checkpoint(opts.checkpoint_path)
        return self.result()

    def result(self) -> ReconstructionResult:
        with torch.no_grad():
            obj = self.object().detach().cpu().numpy()
            probe = self.probe().detach().cpu().numpy()
        return ReconstructionResult(object=obj, probe=probe, positions=self.positions.cpu().numpy(),
                                    loss=np.asarray(self.loss_history, dtype=np.float64),
                                    slice_pos_m=self.slice_pos_m.copy(), config=self.options.to_dict(),
                                    seed=self.options.seed, n_ranks=self.size,
                                    extra={k: np.asarray(v) for k, v in self.extra.items()})


def _as_options(options) -> ReconstructionOptions:
    return as_options(ReconstructionOptions, options)


def reconstruct(dataset: DiffractionDataset, options: ReconstructionOptions | Mapping[str, Any] | None = None,
                progress: bool = True, *, initial_object=None, rank: int = 0, size: int = 1,
                grad_allreduce: GradAllreduce | None = None,
                callback: Callable[[int, float], None] | None = None) -> ReconstructionResult:
    """Reconstruct a multislice object from a diffraction dataset.

    Parameters
    ----------
    dataset : :class:`ptycho_ddip.io.DiffractionDataset`.
    options : :class:`ReconstructionOptions` or a dict of its fields.
    progress : progress display with the loss on rank 0: True (a bar on a terminal, plain lines in logs), "lines",
        "bar" or False (see :mod:`ptycho_ddip.progress`).
    initial_object : complex (n_slices, H, W) start, overriding ``options.init``.
    rank, size, grad_allreduce : data-parallel hooks (see the module docstring); the default is serial.
    callback : called as ``callback(epoch, loss)`` after every epoch.

    Returns
    -------
    :class:`ReconstructionResult`.

    Examples
    --------
    >>> from ptycho_ddip.multislice.simulate import simulate
    >>> ds = simulate(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=8)
    >>> res = reconstruct(ds, {"epochs": 2, "device": "cpu"}, progress=False)
    >>> res.object.shape, res.loss.shape
    ((2, 64, 64), (2,))
    """
    rec = Reconstructor(dataset, _as_options(options), initial_object=initial_object, rank=rank, size=size,
                        grad_allreduce=grad_allreduce)
    return rec.run(progress=progress, callback=callback)


def reconstruct_file(data_path: str | os.PathLike, out_path: str | os.PathLike,
                     options: ReconstructionOptions | Mapping[str, Any] | None = None, overwrite: bool = False,
                     progress: bool = True, *, comm=None,
                     callback: Callable[[int, float], None] | None = None,
                     notify: Callable[[str], None] | None = None) -> ReconstructionResult:
    """Read a dataset, reconstruct, and write the result (HDF5 + TIFFs) with
    :func:`ptycho_ddip.io.write_reconstruction`. The output path and every input are checked before any work; on
    an error nothing is written.

    ``comm`` (a :class:`ptycho_ddip.parallel.Communicator`; default :func:`ptycho_ddip.parallel.get_comm`, which is
    serial unless the process was started by ``mpiexec`` with several ranks) makes the run data parallel: every rank
    evaluates its share of each global minibatch, gradients are summed with one ``Allreduce``, only rank 0 shows
    progress and writes the files. Every rank returns the (identical) result. ``notify(line)`` (rank 0) receives
    notices for the user before the work starts (e.g. :func:`probe_notice`)."""
    from ..io import check_output_path, read_dataset, write_reconstruction
    from ..parallel import get_comm

    comm = get_comm() if comm is None else comm
    options = _as_options(options)
    comm.call_on_root(check_output_path, out_path, overwrite)
    dataset = comm.agree(read_dataset, data_path)
    notice = probe_notice(dataset, options)
    if notice and notify is not None and comm.is_root:
        notify(notice)
    rec = comm.agree(Reconstructor, dataset, options, rank=comm.rank, size=comm.size,
                     grad_allreduce=comm.allreduce_sum_ if comm.size > 1 else None)
    result = rec.run(progress=comm.is_root and progress, callback=callback)
    if comm.is_root:
        write_reconstruction(out_path, result.to_dict(), overwrite=overwrite)
    comm.barrier()
    return result
