"""Truth-free choice of the iterate returned for each slice that receives a high-pass ghost (``select``).

Why: along a DDIP fit, the slice that receives a high-pass ghost (slice 2 of the paper's data) is often cleanest
early, and the ghost creeps back later (docs/method.md, history). The fit keeps that
slice's image every ``select_every`` epochs from ``select_from`` on. At the end it returns, for each such slice, one
of the kept images or the final one. Candidates are the final image and the kept images that correlate at least
``guard`` with it (an early, underfitted image has little fine detail and so little high-pass crosstalk; the guard
keeps it out). They are scored with the truth-free :func:`ptycho_ddip.separation.metrics.crosstalk_estimate` of the
slice against the other slices' inputs:

- ``"plain"`` (section 10): the smallest plain estimate. It is biased by the slice's own signal: a low-pass copy of
  it sits in the other inputs, so a clean slice reads 0.1-0.3;
- ``"partial"`` (section 11): the smallest partial estimate (``partial=True``, the slice's own low-pass band taken up
  by nuisance regressors). No bias, but its nuisance regressors also take up part of a ghost;
- ``"rank"`` (section 12, ``select="crosstalk"``): the smallest sum of the candidate's ranks under the two
  estimates (ties: the smaller partial estimate). Their errors come from different places and cancel in part:
  over 60 default kernel fits (10 seeds) the plain / partial estimate alone returns a slice 2 that passes the
  stability criterion on 42 / 39, the rank sum on 44 (final iterate: 26).

Slices that receive a low-pass ghost are returned as fitted: they are cleaned late, and the estimate does not rank
their iterates well (section 10).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from .metrics import correlation, crosstalk_nuisance, crosstalk_regressors, explained_ratio

__all__ = ["SELECT_ESTIMATES", "selected_slices", "best_candidate", "select_iterates"]

SELECT_ESTIMATES = ("rank", "partial", "plain")


def selected_slices(ghost_kinds: Sequence[str]) -> list:
    """Indices of the slices whose iterate is selected: those receiving a high-pass ghost."""
    return [i for i, k in enumerate(ghost_kinds) if k == "highpass"]


def best_candidate(estimate: str, partial: Sequence[float] | None, plain: Sequence[float] | None) -> int:
    """Index of the candidate that rule ``estimate`` picks from its scores: the smallest ``partial`` or ``plain``
    estimate, or for ``"rank"`` the smallest sum of the two ranks (ties: the smaller partial estimate, then the
    first). Only the scores the rule uses need to be given."""
    if estimate == "rank":
        order = list(zip(rankdata(partial) + rankdata(plain), partial))
    else:
        order = list(partial if estimate == "partial" else plain)
    return min(range(len(order)), key=order.__getitem__)


def select_iterates(kept: Sequence[tuple], final: np.ndarray, inputs: np.ndarray, ghost_kinds: Sequence[str],
                    final_epoch: int, guard: float = 0.9, estimate: str = "rank") -> tuple:
    """Choose, for each slice of :func:`selected_slices`, the returned iterate (module docstring).

    Parameters
    ----------
    kept : [(epoch, (S, H, W) images of the selected slices, in :func:`selected_slices` order)], oldest first.
    final : (N, H, W) the final images of all slices (matched to the inputs).
    inputs : (N, H, W) the input images.
    ghost_kinds : per slice ``"lowpass"`` / ``"highpass"``.
    final_epoch : the epoch of ``final``.
    guard : a kept image is a candidate only if its correlation with the slice's final image is >= guard.
    estimate : ``"rank"``, ``"partial"`` or ``"plain"`` (module docstring).

    Returns
    -------
    (images (N, H, W): ``final`` with the selected slices replaced, epochs (N,) int: the epoch each slice comes
    from).
    """
    if estimate not in SELECT_ESTIMATES:
        raise ValueError(f"estimate must be one of {SELECT_ESTIMATES}, got {estimate!r}")
    final = np.asarray(final, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    out = final.copy()
    epochs = np.full(final.shape[0], int(final_epoch), dtype=np.int64)
    for s, i in enumerate(selected_slices(ghost_kinds)):
        regs = crosstalk_regressors(i, final, inputs, ghost_kinds)  # the other slices only: fixed for slice i
        cands = [(int(final_epoch), final[i])]
        for epoch, images in kept:
            img = np.asarray(images[s], dtype=np.float64)
            if correlation(img, final[i]) >= guard:
                cands.append((int(epoch), img))
        partial = plain = None
        if estimate in ("partial", "rank"):
            partial = [explained_ratio(c, regs, crosstalk_nuisance(c, ghost_kinds[i])) for _, c in cands]
        if estimate in ("plain", "rank"):
            plain = [explained_ratio(c, regs) for _, c in cands]
        best = best_candidate(estimate, partial, plain)
        epochs[i] = cands[best][0]
        out[i] = cands[best][1]
    return out, epochs
