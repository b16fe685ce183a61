"""Sweeps over gamma_excl and filter types (the paper's Figs 3, 4 and 6), and the automatic choice of gamma_excl.

A sweep fits one separation per setting (filters, gamma_excl) on the same images with the same seed. Under MPI the
settings are spread over the ranks (setting s on rank s % R) and rank 0 gathers the results.

Automatic gamma (``choose_gamma``), without ground truth. Every candidate gamma is fitted in full, and the one whose
outputs have the smallest truth-free crosstalk estimate (:func:`ptycho_ddip.separation.metrics.crosstalk_estimate`:
how much of each output the other slices' inputs, filtered to the ghost's band, explain) is chosen. Its validation
against the ground-truth-best gamma is in docs/results.md (``demos/paper_figures.py``).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .options import SeparationOptions
from .separate import (SeparationResult, assemble_result, estimate_target_mixing, fit_members, normalize_jointly,
                       read_inputs, validate_images)

__all__ = ["Setting", "sweep_settings", "run_sweep", "sweep_rows", "choose_gamma", "sweep_figure",
           "uncertainty_figure", "AUTO_GAMMAS", "auto_gammas"]

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


def sweep_figure(inputs: np.ndarray, runs: Sequence, truth: Optional[np.ndarray] = None, exponent: float = 0.5,
                 path: Optional[str] = None, **kwargs):
    """The paper's Figs 3/4 layout (inputs, every setting's output, truth, power spectra):
    :func:`ptycho_ddip.plotting.sweep_figure` (``kwargs``: ``part``, ``label``, ``pixel_size_m``)."""
    from ..plotting import sweep_figure as figure

    return figure(inputs, runs, truth, exponent, path, **kwargs)


def uncertainty_figure(runs: Sequence, path: Optional[str] = None, **kwargs):
    """The paper's Fig. 6 (ensemble std maps per setting, mean std against gamma):
    :func:`ptycho_ddip.plotting.uncertainty_figure` (``kwargs``: ``part``, ``label``, ``pixel_size_m``)."""
    from ..plotting import uncertainty_figure as figure

    return figure(runs, path, **kwargs)


def sweep_paths(out_path: str, settings: Sequence[Setting]) -> dict:
    """``OUT.h5`` -> one result per setting ``OUT_<filters>_g<gamma>.h5``, ``OUT_sweep.png/.json/.md`` and
    ``OUT_auto.json`` (the choice of ``--gamma-excl auto``)."""
    stem = out_path[:-3] if out_path.endswith(".h5") else os.path.splitext(out_path)[0]
    d = {s: f"{stem}_{s.label}.h5" for s in settings}
    d.update({"png": stem + "_sweep.png", "json": stem + "_sweep.json", "md": stem + "_sweep.md",
              "auto_json": stem + "_auto.json",
              "uncertainty_png": stem + "_uncertainty.png"})
    return d


def write_sweep(out_path: str, inputs: np.ndarray, runs: Sequence, config: dict, truth: Optional[np.ndarray] = None,
                ghosts: Optional[np.ndarray] = None, overwrite: bool = False,
                say: Callable[[str], None] = print) -> list:
    """Write every run (HDF5 + TIFF + PNG, as ``separate`` does), the comparison figure and the metrics table."""
    from .. import io
    from .separate import output_paths, write_result_files

    settings = [s for s, _ in runs]
    paths = sweep_paths(out_path, settings)
    part = config.get("part")
    for s, r in runs:
        write_result_files(output_paths(paths[s]), r, truth, overwrite, image_part=part)
    rows = sweep_rows(runs, truth, ghosts)
    sweep_figure(inputs, runs, truth=truth, path=paths["png"], part=part)
    if any(r.std is not None for _, r in runs):
        uncertainty_figure(runs, path=paths["uncertainty_png"], part=part)
    with io.atomic_write(paths["json"], overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        json.dump({"config": config, "rows": rows}, fh, indent=1)
    table = rows_markdown(rows)
    with io.atomic_write(paths["md"], overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        fh.write(table + "\n")
    say(table)
    return rows


def _check_sweep_outputs(out_path: str, base: SeparationOptions, settings: Sequence[Setting],
                         overwrite: bool) -> None:
    from .. import io
    from .separate import output_keys, output_paths

    paths = sweep_paths(out_path, settings)
    for s in settings:
        p = output_paths(paths[s])
        for key in output_keys(base):
            io.check_output_path(p[key], overwrite)
    for key in ("png", "json", "md"):
        io.check_output_path(paths[key], overwrite)


def sweep_files(sources: Sequence[str], out_path: str, base: SeparationOptions, settings: Sequence[Setting], *,
                part: Optional[str] = None, truth_sources: Optional[Sequence[str]] = None, overwrite: bool = False,
                progress: bool = True, comm=None) -> Optional[list]:
    """Read the slices, fit every setting (spread over MPI ranks) and write the results, the comparison figure and
    the metrics table (:func:`sweep_paths`); returns the table rows on rank 0."""
    check_settings(base, settings)
    if comm is None or comm.is_root:
        _check_sweep_outputs(out_path, base, settings, overwrite)
    x, truth = read_inputs(sources, part, truth_sources)
    runs = run_sweep(x, base, settings, truth=truth, comm=comm, progress=progress)
    if runs is None:
        return None
    config = {"sources": list(sources), "part": part, "base": base.to_dict(),
              "settings": [dataclasses.asdict(s) for s in settings]}
    return write_sweep(out_path, x, runs, config, truth=truth, overwrite=overwrite)


def auto_gamma_files(sources: Sequence[str], out_path: str, options: SeparationOptions, candidates: Sequence[float],
                     *, part: Optional[str] = None, truth_sources: Optional[Sequence[str]] = None,
                     overwrite: bool = False, progress: bool = True, comm=None, rule: str = "crosstalk",
                     say: Callable[[str], None] = print) -> Optional[SeparationResult]:
    """``--gamma-excl auto``: fit every candidate gamma with the full ``options`` (a sweep, spread over MPI ranks),
    write the sweep's files (:func:`sweep_paths`: one result per gamma, the comparison figure, the table with the
    crosstalk estimates), choose gamma with :func:`choose_gamma` on the final outputs, and write the chosen run as
    the separation's own ``OUT.h5`` (+ TIFF, PNG) and the choice as ``OUT_auto.json``. Costs one fit per candidate
    (the chosen one is not refitted). Checkpoints are not used. Returns the chosen result on rank 0, None elsewhere.

    Why full-length fits and not a short sweep: the crosstalk estimate of outputs after a quarter of the epochs
    ranked the gammas less well (docs/results.md), since slice 1 is cleaned late in the fit."""
    from .. import io
    from .separate import output_keys, output_paths, write_result_files

    auto_gammas(options)  # refuses the estimated mixing
    options = dataclasses.replace(options, checkpoint_every=0, resume=False, checkpoint_path=None)
    settings = sweep_settings(candidates, [options.filters])
    auto_json = sweep_paths(out_path, settings)["auto_json"]
    chosen_paths = output_paths(out_path)
    if comm is None or comm.is_root:
        _check_sweep_outputs(out_path, options, settings, overwrite)
        for key in output_keys(options):
            io.check_output_path(chosen_paths[key], overwrite)
        io.check_output_path(auto_json, overwrite)
    x, truth = read_inputs(sources, part, truth_sources)
    runs = run_sweep(x, options, settings, truth=truth, comm=comm, progress=progress)
    if runs is None:
        return None
    config = {"sources": list(sources), "part": part, "base": options.to_dict(),
              "settings": [dataclasses.asdict(s) for s in settings]}
    rows = write_sweep(out_path, x, runs, config, truth=truth, overwrite=overwrite, say=say)
    gamma = choose_gamma(rows, rule)
    chosen = next(r for s, r in runs if s.gamma == gamma)
    chosen.config.update({"sources": list(sources), "part": part,
                          "auto_gamma": {"rule": rule, "candidates": [float(c) for c in candidates]}})
    write_result_files(chosen_paths, chosen, truth, overwrite)
    with io.atomic_write(auto_json, overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        json.dump({"rule": rule, "epochs": options.epochs, "rows": rows, "gamma_excl": gamma}, fh, indent=1)
    say(f"--gamma-excl auto: chose {gamma:g} (rule {rule}: smallest truth-free crosstalk estimate; {auto_json})")
    return chosen
