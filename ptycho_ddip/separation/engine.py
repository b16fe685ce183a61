"""The fitting loop of a DDIP separation: Adam steps of a :class:`~.fit.Fit`, with hooks.

:class:`Engine` is the loop of both methods (the estimated and the learnable mixing). Everything a fit does besides
stepping lives in a :class:`Hook`, called in list order:

* ``begin(engine)`` once before the first step (after a restored checkpoint: ``engine.start`` > 0);
* ``after_step(engine, epoch, out)`` after every Adam step, with ``out`` the model's outputs of that step, i.e. the
  state after ``epoch`` steps (``engine.history[epoch]`` holds its losses);
* ``end(engine)`` after the last step;
* ``finish(engine, last, returned) -> returned`` once, without gradients: ``last`` are the outputs of the final
  state, ``returned`` what the fit will return, which a hook may replace (the best iterate of ``select="loss"``);
* ``state_dict()`` / ``load_state_dict(state)``: a hook with a ``key`` is saved in checkpoints under that key.

The hooks of a separation (:func:`~.separate.fit_members` picks them from the options): :class:`BestIterate`
(``select="loss"``), :class:`Monitor` (ground truth given), :class:`Snapshots` (``snapshot_every``),
:class:`KeptIterates` (``select="crosstalk"``), :class:`Progress` (bar and callback) and :class:`Checkpoint` (last,
so that every hook's state of an epoch is in its checkpoint). Hooks read the fit and never change it: a fit with any
set of hooks, and a resumed fit, take the same steps.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..atomic import atomic_write
from ..progress import progress_bar
from .fit import Fit, slice_mismatch
from .metrics import correlation, ghost_to_signal, gradient_correlation
from .select import select_iterates

__all__ = ["Engine", "Hook", "BestIterate", "Monitor", "Snapshots", "KeptIterates", "Progress", "Checkpoint",
           "CHECKPOINT_FORMAT", "check_checkpoint", "save_checkpoint", "match_to_inputs", "monitor_columns",
           "monitor_row", "snapshot"]

#: version of the checkpoint layout and of the options it records; a checkpoint of another format is refused
CHECKPOINT_FORMAT = 2
#: options that may change between a run and its resumption (they do not change the fit)
RESUME_IGNORED = ("epochs", "resume", "checkpoint_every", "checkpoint_path", "experimental.log_every", "device",
                  "threads", "monitor_every")


class Hook:
    """One concern of a fit, called by :class:`Engine` (module docstring); every method is optional."""

    key = ""  # its entry in checkpoints; "" = nothing to save

    def begin(self, engine: "Engine") -> None:
        pass

    def after_step(self, engine: "Engine", epoch: int, out: dict) -> None:
        pass

    def end(self, engine: "Engine") -> None:
        pass

    def finish(self, engine: "Engine", last: dict, returned: dict) -> dict:
        return returned

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        pass


class Engine:
    """Fit ``fit`` for ``epochs`` Adam steps, calling ``hooks``; ``history`` (epochs, K, 4) holds each step's total,
    mismatch, exclusion and weight losses, on the device."""

    def __init__(self, fit: Fit, epochs: int, hooks: Sequence[Hook] = ()):
        self.fit, self.epochs, self.hooks = fit, int(epochs), list(hooks)
        self.history = torch.zeros(self.epochs, fit.members, 4, device=fit.device, dtype=fit.dtype)
        self.start = 0

    def run(self) -> tuple[dict, dict]:
        """Step from ``start`` to ``epochs``; returns the final outputs and the returned ones (module docstring)."""
        for hook in self.hooks:
            hook.begin(self)
        for epoch in range(self.start, self.epochs):
            out, self.history[epoch] = self.fit.step(epoch)
            for hook in self.hooks:
                hook.after_step(self, epoch, out)
        for hook in self.hooks:
            hook.end(self)
        with torch.no_grad():
            last = returned = self.fit.outputs(unmixed=self.epochs == 0)
            for hook in self.hooks:
                returned = hook.finish(self, last, returned)
        return last, returned

    def state_dict(self, done: int, config: dict) -> dict:
        """Everything a resumed fit needs after ``done`` steps: the fit, the loss history and every hook's state."""
        return {"format": CHECKPOINT_FORMAT, "config": config, "epoch": int(done), "fit": self.fit.state_dict(),
                "history": self.history[:done].cpu(),
                "hooks": {h.key: h.state_dict() for h in self.hooks if h.key}}

    def restore(self, path: str, config: dict) -> None:
        """Continue from the checkpoint at ``path`` (refused when of another format or other options)."""
        ck = torch.load(path, map_location=self.fit.device, weights_only=False)
        check_checkpoint(ck, config, path)
        self.fit.load_state_dict(ck["fit"])
        self.start = int(ck["epoch"])
        done = min(self.start, self.epochs)
        self.history[:done] = ck["history"][:done].to(self.history.device)
        for hook in self.hooks:
            if hook.key in ck["hooks"]:
                hook.load_state_dict(ck["hooks"][hook.key])


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
    if any(old.get(k) != new.get(k) for k in set(old) | set(new) if k not in RESUME_IGNORED):
        raise ValueError(f"{path}: checkpoint was written with different options; remove it or run without --resume")


def save_checkpoint(state: dict, path: str) -> None:
    """Write ``state`` to ``path`` atomically (torch format)."""
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(state, tmp)


class Checkpoint(Hook):
    """Save the engine's state (:meth:`Engine.state_dict`) to ``path`` every ``every`` epochs; place it last."""

    def __init__(self, path: str, every: int, config: dict):
        self.path, self.every, self.config = path, int(every), config

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        done = epoch + 1
        if self.every and done % self.every == 0:
            save_checkpoint(engine.state_dict(done, self.config), self.path)


class Progress(Hook):
    """A progress display (:func:`ptycho_ddip.progress.progress_bar`) and ``callback(epoch, [total, mismatch,
    exclusion, weight], alpha)`` of the first member every ``every`` epochs and at the end."""

    def __init__(self, desc: str, enabled: Any, every: int, callback: Optional[Callable] = None):
        self.desc, self.enabled, self.every, self.callback = desc, enabled, int(every), callback

    def begin(self, engine: Engine) -> None:
        self.bar = progress_bar(engine.epochs, self.desc, self.enabled, initial=engine.start, dynamic_ncols=True)

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        done = epoch + 1
        if done % self.every == 0 or done == engine.epochs:
            vals = engine.history[epoch, 0].tolist()
            al = out["alpha"][0].detach().cpu().numpy()
            self.bar.set_postfix(loss=f"{vals[0]:.3e}", mis=f"{vals[1]:.2e}", excl=f"{vals[2]:.2e}",
                                 alpha="/".join(f"{a:.3f}" for a in al), refresh=False)
            self.bar.update(done - self.bar.n)
            if self.callback is not None:
                self.callback(done, vals, al)

    def end(self, engine: Engine) -> None:
        self.bar.close()


class BestIterate(Hook):
    """``select="loss"``: per member and slice, the network image whose slice is closest (mean squared difference)
    to its unmixed slice ``unmixed`` (N, H, W) over the whole fit, the final state included; kept on the device of
    ``unmixed`` in its dtype (no host sync). After the fit ``epochs`` (K, N) is the epoch of each returned slice."""

    key = "best"

    def __init__(self, unmixed: torch.Tensor, members: int):
        (n, h, w), dev, dtype = unmixed.shape, unmixed.device, unmixed.dtype
        self.state = {"val": torch.full((members, n), float("inf"), device=dev, dtype=dtype),
                      "epoch": torch.zeros((members, n), device=dev, dtype=torch.long),
                      "y": torch.zeros((members, n, h, w), device=dev, dtype=dtype)}
        self.unmixed, self.epochs = unmixed, None

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        self.track(out, epoch)

    def track(self, out: dict, epoch: int) -> None:
        """Update the state with ``out``, the outputs after ``epoch`` steps."""
        best = self.state
        with torch.no_grad():
            d = out["slice_mismatch"] if "slice_mismatch" in out else slice_mismatch(out, self.unmixed)
            better = d < best["val"]
            best["val"] = torch.where(better, d.to(best["val"].dtype), best["val"])
            best["epoch"] = torch.where(better, torch.full_like(best["epoch"], int(epoch)), best["epoch"])
            best["y"] = torch.where(better[..., None, None], out["y"].detach().to(best["y"].dtype), best["y"])

    def finish(self, engine: Engine, last: dict, returned: dict) -> dict:
        self.track(last, engine.epochs)
        self.epochs = self.state["epoch"].cpu().numpy()
        return engine.fit.model.outputs(self.state["y"])

    def state_dict(self) -> dict:
        return {key: v.cpu() for key, v in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        self.state = {key: v.to(self.state[key].device) for key, v in state.items()}


def snapshot(epoch: int, y: torch.Tensor, inputs: Optional[np.ndarray]) -> tuple:
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
    n = y.shape[0]
    c = np.array([[correlation(y[k], inputs[i]) for k in range(n)] for i in range(n)])
    return max(itertools.permutations(range(n)), key=lambda p: sum(c[i, p[i]] for i in range(n)))


class Snapshots(Hook):
    """The first member's clean images every ``every`` epochs and at the end (the returned ones), matched to the
    inputs ``target`` (N, H, W): ``items`` [(epoch, (N, H, W) float32)]."""

    key = "snapshots"

    def __init__(self, every: int, target: np.ndarray):
        self.every, self.target, self.items = int(every), target, []

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        if epoch > 0 and epoch % self.every == 0:
            self.items.append(snapshot(epoch, out["y"][0], self.target))

    def finish(self, engine: Engine, last: dict, returned: dict) -> dict:
        if not self.items or self.items[-1][0] < engine.epochs:
            self.items.append(snapshot(engine.epochs, returned["y"][0], self.target))
        return returned

    def state_dict(self) -> list:
        return self.items

    def load_state_dict(self, state: list) -> None:
        self.items = list(state)


class KeptIterates(Hook):
    """``select="crosstalk"``: keep the images of ``slices`` (those receiving a high-pass ghost) of every member
    every ``every`` epochs from ``start`` on, matched to ``inputs`` (None: slot order), for :meth:`select`."""

    key = "kept"

    def __init__(self, slices: Sequence[int], every: int, start: int, inputs: Optional[np.ndarray], members: int):
        self.slices, self.every, self.start, self.inputs = list(slices), int(every), int(start), inputs
        self.kept: list = [[] for _ in range(members)]  # per member [(epoch, (S, H, W) float32)]

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        if epoch >= self.start and epoch % self.every == 0:
            y_host = out["y"].detach().cpu()  # one transfer for all members
            for m, kept in enumerate(self.kept):
                _, y_m = snapshot(epoch, y_host[m], self.inputs)
                kept.append((epoch, y_m[self.slices]))

    def select(self, member: int, final: np.ndarray, target: np.ndarray, kinds: Sequence[str], epochs: int,
               guard: float, estimate: str) -> tuple:
        """(images, epochs) of member ``member``: :func:`~.select.select_iterates` of its kept images."""
        return select_iterates(self.kept[member], final, target, kinds, epochs, guard, estimate)

    def state_dict(self) -> list:
        return self.kept

    def load_state_dict(self, state: list) -> None:
        self.kept = [list(m) for m in state]


def monitor_columns(n: int) -> tuple:
    """The columns of the ground-truth monitor of ``n`` slices (:class:`Monitor`)."""
    cols = ["epoch"]
    cols += [f"ghost_to_signal_{i + 1}" for i in range(n)] + [f"correlation_{i + 1}" for i in range(n)]
    cols += [f"alpha_{i + 1}" for i in range(n)] + ["gradient_correlation"]
    return tuple(cols)


def monitor_row(epoch: int, y: np.ndarray, alpha: np.ndarray, truth: np.ndarray, ghosts: Optional[np.ndarray],
                inputs: Optional[np.ndarray] = None) -> list:
    """One monitor row for one member: y (N, H, W) the network outputs, alpha (N,); outputs matched to ``inputs``
    first when given (what the user would get at this epoch)."""
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    if inputs is not None:
        y = y[list(match_to_inputs(y, inputs))]
    gsr, corr = [], []
    for i in range(n):
        g = ghosts[i] if ghosts is not None else np.stack([truth[j] for j in range(n) if j != i])
        gsr.append(ghost_to_signal(y[i], truth[i], g))
        corr.append(correlation(y[i], truth[i]))
    gc = float(np.mean([gradient_correlation(y[i], y[j]) for i in range(n) for j in range(i + 1, n)]))
    return [float(epoch)] + gsr + corr + [float(a) for a in alpha] + [gc]


class Monitor(Hook):
    """Ground-truth trajectory every ``every`` epochs and at the end (the final iterate): ``rows`` per member, of
    :func:`monitor_columns`. ``truth``/``ghosts`` (N, H, W); ``inputs``: match the outputs to them first."""

    key = "monitor"

    def __init__(self, truth: np.ndarray, ghosts: Optional[np.ndarray], every: int, inputs: Optional[np.ndarray],
                 members: int):
        self.truth, self.ghosts, self.every, self.inputs = truth, ghosts, int(every), inputs
        self.rows: list = [[] for _ in range(members)]

    def after_step(self, engine: Engine, epoch: int, out: dict) -> None:
        if epoch > 0 and epoch % self.every == 0:
            y_np, al_np = out["y"].detach().cpu().numpy(), out["alpha"].detach().cpu().numpy()
            for m, rows in enumerate(self.rows):
                rows.append(monitor_row(epoch, y_np[m], al_np[m], self.truth, self.ghosts, self.inputs))

    def finish(self, engine: Engine, last: dict, returned: dict) -> dict:
        y_last = last["y"].cpu().numpy().astype(np.float64)
        alpha = returned["alpha"].cpu().numpy().astype(np.float64)
        for m, rows in enumerate(self.rows):
            if not rows or rows[-1][0] < engine.epochs:
                rows.append(monitor_row(engine.epochs, y_last[m], alpha[m], self.truth, self.ghosts, self.inputs))
        return returned

    def state_dict(self) -> list:
        return self.rows

    def load_state_dict(self, state: list) -> None:
        self.rows = [list(m) for m in state]
