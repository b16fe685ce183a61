"""Sweeps over gamma_excl and filter types (the paper's Figs 3, 4 and 6), and the automatic choice of gamma_excl.

A sweep fits one separation per setting (filters, gamma_excl) on the same images with the same seed. Under MPI the
settings are spread over the ranks (setting s on rank s % R) and rank 0 gathers the results. Its files (one result per
setting, the comparison figure, the metrics table) are written by :mod:`ptycho_ddip.separation_files`.

Automatic gamma (``choose_gamma``), without ground truth. Every candidate gamma is fitted in full, and the one whose
outputs have the smallest truth-free crosstalk estimate (:func:`ptycho_ddip.separation.metrics.crosstalk_estimate`:
how much of each output the other slices' inputs, filtered to the ghost's band, explain) is chosen. Its validation
against the ground-truth-best gamma is in docs/results.md (``demos/paper_figures.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .fit import estimate_target_mixing
from .options import SeparationOptions
from .separate import SeparationResult, assemble_result, fit_members, normalize_jointly, validate_images

__all__ = ["Setting", "sweep_settings", "check_settings", "run_sweep", "sweep_rows", "choose_gamma", "rows_markdown",
           "AUTO_GAMMAS", "auto_gammas"]

#: candidate gammas of ``--gamma-excl auto`` per filter type of ``method="paper"`` (spanning DESIGN.md's ranges); the
#: rule was validated on the learnable mixing only, so the estimated mixing has none (:func:`auto_gammas`)
AUTO_GAMMAS = {"kernel": (0.1, 0.2, 0.4, 0.7, 1.0), "dip": (0.02, 0.04, 0.1, 0.2, 0.4)}


def auto_gammas(options: SeparationOptions) -> tuple:
    """The candidates of ``--gamma-excl auto`` for ``options``; refuses ``method="estimate"``."""
    if options.method != "paper":
        raise ValueError("--gamma-excl auto chooses the exclusion weight of the learnable mixing (--method paper), "
                         "where it was validated; the estimated mixing's default is 0 (--gamma-excl G sets another)")
    return AUTO_GAMMAS[options.learned.filters]


@dataclass(frozen=True)
class Setting:
    """One fit of a sweep: the ghost filters (``"kernel"``/``"dip"``; ``"estimate"`` for the estimated mixing) and
    gamma_excl."""

    filters: str
    gamma: float

    @property
    def label(self) -> str:
        return f"{self.filters}_g{self.gamma:g}"


def sweep_settings(gammas: Sequence[Optional[float]], filters: Sequence[str]) -> list:
    """Every (filters, gamma) combination, filters major; a gamma of None is the filter type's default
    (:data:`~.options.DEFAULT_GAMMA`; filters ``"estimate"`` for the estimated mixing)."""
    from .options import DEFAULT_GAMMA

    return [Setting(f, float(DEFAULT_GAMMA[f] if g is None else g)) for f in filters for g in gammas]


def check_settings(base: SeparationOptions, settings: Sequence[Setting]) -> None:
    """A sweep's filter types must be those of ``base.method``: the learnable mixing's filters for ``"paper"``,
    ``"estimate"`` alone for the estimated mixing, which uses no filters."""
    kinds = {s.filters for s in settings}
    if base.method == "estimate" and kinds != {"estimate"}:
        raise ValueError("a sweep over filter types (--filters kernel,dip) compares the learnable mixing's filters, "
                         "which the estimated mixing does not use; add --method paper")
    if base.method == "paper" and "estimate" in kinds:
        raise ValueError("a sweep setting of the estimated mixing with method='paper'; give kernel or dip filters")


def _setting_options(base: SeparationOptions, s: Setting) -> SeparationOptions:
    # select="loss" scores iterates only without exclusion: re-resolve it for each gamma
    changes = {"gamma_excl": s.gamma, "select": None if base.select == "loss" else base.select}
    if base.method == "paper":
        changes["learned"] = {"filters": s.filters}
    return base.updated(**changes)


def run_sweep(images: np.ndarray, base: SeparationOptions, settings: Sequence[Setting], *,
              truth: Optional[np.ndarray] = None, ghosts: Optional[np.ndarray] = None, comm=None,
              progress: bool = True) -> Optional[list]:
    """Fit every setting; returns [(Setting, SeparationResult)] in setting order (on rank 0; None elsewhere)."""
    check_settings(base, settings)
    x = validate_images(images)
    rank, size = (comm.rank, comm.size) if comm is not None else (0, 1)
    # the estimated mixing depends on the images alone: once for every setting
    mixing = (estimate_target_mixing(normalize_jointly(x)[0], base, progress) if base.method == "estimate"
              else None)
    mine = []
    for s_idx, s in enumerate(settings):
        if s_idx % size != rank:
            continue
        opts = _setting_options(base, s)
        outs = fit_members(x, opts, truth=truth, ghosts=ghosts, progress=progress, rank=rank, mixing=mixing)
        mine.append((s_idx, assemble_result(x, outs, opts)))
    if comm is not None and size > 1:
        parts = comm.gather(mine)
        if parts is None:
            return None
        mine = [item for part in parts for item in part]
    mine.sort(key=lambda t: t[0])
    return [(settings[i], r) for i, r in mine]


def _final_losses(result: SeparationResult) -> tuple:
    last = result.loss[-1]
    return float(last[2]), float(last[3])  # mismatch, exclusion


def sweep_rows(runs: Sequence, truth: Optional[np.ndarray] = None, ghosts: Optional[np.ndarray] = None) -> list:
    """One dict per run: setting, final alphas, mismatch and exclusion, mean ensemble std, the truth-free crosstalk
    estimate of every slice (``xt1``...) and their mean (``crosstalk``), and with truth the ghost-to-signal ratio and
    correlation of every slice."""
    from .metrics import crosstalk_estimate, separation_metrics

    rows = []
    for s, r in runs:
        mis, exc = _final_losses(r)
        xt = crosstalk_estimate(r.separated, r.inputs, r.config.get("ghost_kinds"))
        row = {"filters": s.filters, "gamma_excl": s.gamma, "alpha": np.asarray(r.alpha).tolist(),
               "mismatch": mis, "exclusion": exc, "crosstalk": float(np.mean(xt)),
               "mean_std": float(np.mean(r.std)) if r.std is not None else None}
        row.update({f"xt{i + 1}": v for i, v in enumerate(xt)})
        if truth is not None:
            m = separation_metrics(r.separated, truth, ghosts)
            for i, mi in enumerate(m):
                row[f"gsr{i + 1}"] = mi["ghost_to_signal"]
                row[f"corr{i + 1}"] = mi["correlation"]
        rows.append(row)
    return rows


def choose_gamma(rows: Sequence[dict], rule: str = "crosstalk", tolerance: float = 1.5) -> float:
    """The automatic gamma_excl of a sweep of one filter type; no ground truth is used.

    ``rule="crosstalk"`` (default): the gamma whose outputs have the smallest mean truth-free crosstalk estimate
    (``row["crosstalk"]``, :func:`ptycho_ddip.separation.metrics.crosstalk_estimate`). ``rule="mismatch"``: the
    largest gamma whose final mismatch is <= ``tolerance`` x the smallest mismatch among ``rows`` (the rule before
    the crosstalk estimate; it matched the best gamma in 1 of 4 cases, docs/results.md)."""
    if not rows:
        raise ValueError("choose_gamma needs at least one sweep row")
    if rule == "crosstalk":
        return float(min(rows, key=lambda r: (r["crosstalk"], r["gamma_excl"]))["gamma_excl"])
    if rule == "mismatch":
        best = min(r["mismatch"] for r in rows)
        return float(max(r["gamma_excl"] for r in rows if r["mismatch"] <= tolerance * best))
    raise ValueError(f"choose_gamma: rule must be 'crosstalk' or 'mismatch', got {rule!r}")


def rows_markdown(rows: Sequence[dict]) -> str:
    n = max((int(k[3:]) for r in rows for k in r if k.startswith("gsr")), default=0)
    xt = all("crosstalk" in r for r in rows)
    head = "| filters | gamma_excl | alphas | mismatch | exclusion |" + (" crosstalk est. |" if xt else "")
    head += "".join(f" GSR{i} | corr{i} |" for i in range(1, n + 1))
    if any(r.get("mean_std") is not None for r in rows):
        head += " mean std |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        al = "/".join(f"{a:.2f}" for a in np.ravel(r["alpha"]))
        line = f"| {r['filters']} | {r['gamma_excl']:g} | {al} | {r['mismatch']:.3e} | {r['exclusion']:.3e} |"
        line += f" {r['crosstalk']:.4f} |" if xt else ""
        line += "".join(f" {r[f'gsr{i}']:.4f} | {r[f'corr{i}']:.4f} |" for i in range(1, n + 1))
        if r.get("mean_std") is not None:
            line += f" {r['mean_std']:.4g} |"
        lines.append(line)
    return "\n".join(lines)
