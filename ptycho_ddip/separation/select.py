"""Truth-free choice of the iterate returned for each slice that receives a high-pass ghost (``select="crosstalk"``).

Why: along a DDIP fit, the slice that receives a high-pass ghost (slice 2 of the paper's data) is often cleanest
early, and the ghost creeps back later (docs/separation_stability.md sections 1, 6 and 10). The fit keeps that
slice's image every ``select_every`` epochs from ``select_from`` on; at the end it returns, for each such slice, the
kept image with the smallest partial :func:`ptycho_ddip.separation.metrics.crosstalk_estimate` (``partial=True``:
the slice's own low-pass band taken up by nuisance regressors; no ground truth), among
those that correlate at least ``guard`` with the final image of the slice (an early, underfitted image has little
fine detail and so little high-pass crosstalk; the guard keeps it out). The final iterate is always a candidate.
Slices that receive a low-pass ghost are returned as fitted: they are cleaned late, and the estimate does not rank
their iterates well (section 10).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .metrics import correlation, crosstalk_nuisance, crosstalk_regressors, explained_ratio

__all__ = ["selected_slices", "select_iterates"]


def selected_slices(ghost_kinds: Sequence[str]) -> list:
    """Indices of the slices whose iterate is selected: those receiving a high-pass ghost."""
    return [i for i, k in enumerate(ghost_kinds) if k == "highpass"]


def select_iterates(kept: Sequence[tuple], final: np.ndarray, inputs: np.ndarray, ghost_kinds: Sequence[str],
                    final_epoch: int, guard: float = 0.9) -> tuple:
    """Choose, for each slice of :func:`selected_slices`, the kept iterate with the smallest partial crosstalk
    estimate.

    Parameters
    ----------
    kept : [(epoch, (S, H, W) images of the selected slices, in :func:`selected_slices` order)], oldest first.
    final : (N, H, W) the final images of all slices (matched to the inputs).
    inputs : (N, H, W) the input images.
    ghost_kinds : per slice ``"lowpass"`` / ``"highpass"``.
    final_epoch : the epoch of ``final``.
    guard : a kept image is a candidate only if its correlation with the slice's final image is >= guard.

    Returns
    -------
    (images (N, H, W): ``final`` with the selected slices replaced, epochs (N,) int: the epoch each slice comes
    from).
    """
    final = np.asarray(final, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    out = final.copy()
    epochs = np.full(final.shape[0], int(final_epoch), dtype=np.int64)
    for s, i in enumerate(selected_slices(ghost_kinds)):
        regs = crosstalk_regressors(i, final, inputs, ghost_kinds)  # the other slices only: fixed for slice i
        kind = ghost_kinds[i]
        best = explained_ratio(final[i], regs, crosstalk_nuisance(final[i], kind))
        for epoch, images in kept:
            candidate = np.asarray(images[s], dtype=np.float64)
            if correlation(candidate, final[i]) < guard:
                continue
            est = explained_ratio(candidate, regs, crosstalk_nuisance(candidate, kind))
            if est < best:
                best, out[i], epochs[i] = est, candidate, int(epoch)
    return out, epochs
