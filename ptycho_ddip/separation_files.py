"""The files of a separation: read the slices, fit (:mod:`ptycho_ddip.separation`), write the results and figures.

``separate`` writes, for ``OUT.h5`` (:func:`output_paths`): ``OUT.h5`` (HDF5: inputs, separated slices, weights,
filters, losses, config), ``OUT_separated.tiff`` (and ``OUT_std.tiff`` for ensembles), ``OUT.png`` and, with
snapshots, ``OUT_snapshots.png``. A sweep writes one such set per setting, ``OUT_<filters>_g<gamma>.h5``, plus
``OUT_sweep.png/.json/.md`` (:func:`sweep_paths`); ``--gamma-excl auto`` adds the chosen run as ``OUT.h5`` and
``OUT_auto.json``. Every output path is checked before fitting (an existing file is an error unless ``overwrite``);
every write is atomic. The engine itself (:mod:`ptycho_ddip.separation`) reads and writes no file but its
checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np

from . import io
from .plotting import separation_figure, snapshot_figure, sweep_figure, uncertainty_figure
from .separation.options import SeparationOptions
from .separation.separate import (MIN_SIZE, SeparationResult, assemble_result, fit_members, member_checkpoint,
                                  validate_images)
from .separation.sweep import Setting, auto_gammas, check_settings, choose_gamma, rows_markdown, run_sweep, sweep_rows

__all__ = ["output_paths", "output_keys", "read_inputs", "write_result_files", "separate_files", "sweep_paths",
           "write_sweep", "sweep_files", "auto_gamma_files"]


def output_paths(out_path: str) -> dict:
    """Every file a separation writes for ``OUT.h5``: the HDF5, a multi-page TIFF of the separated slices (and of
    the std for ensembles) and a PNG figure beside it."""
    stem = out_path[:-3] if out_path.endswith(".h5") else os.path.splitext(out_path)[0]
    return {"h5": out_path, "tiff": stem + "_separated.tiff", "std_tiff": stem + "_std.tiff", "png": stem + ".png",
            "snapshots_png": stem + "_snapshots.png"}


def output_keys(options: SeparationOptions) -> tuple:
    """The keys of :func:`output_paths` that a separation with ``options`` writes."""
    return (("h5", "tiff", "png") + (("std_tiff",) if options.ensemble > 1 else ())
            + (("snapshots_png",) if options.snapshot_every else ()))


def write_result_files(paths: dict, result: SeparationResult, truth: np.ndarray | None = None,
                       overwrite: bool = False, *, image_part: str | None = None,
                       pixel_size_m: float | None = None) -> None:
    """Write ``result`` to the files of :func:`output_paths` (HDF5, TIFFs, figures), each atomically. The figures
    label the images as ``image_part`` of a complex object (default: ``result.config["part"]``; "phase" -> rad,
    none -> input units) and draw scale bars when ``pixel_size_m`` (metres) is given."""
    part = image_part or result.config.get("part")
    io.write_separation_result(paths["h5"], result.to_dict(), overwrite=overwrite)
    io.write_tiff(paths["tiff"], result.separated.astype(np.float32), overwrite=overwrite)
    if result.std is not None:
        io.write_tiff(paths["std_tiff"], result.std.astype(np.float32), overwrite=overwrite)
    separation_figure(result.inputs, result.separated, result.loss, result.alpha, std=result.std, truth=truth,
                      monitor=result.monitor, monitor_columns=result.monitor_columns,
                      mixing=result.config.get("mixing_estimate"), path=paths["png"], part=part,
                      pixel_size_m=pixel_size_m)
    if result.snapshots is not None:
        snapshot_figure(result.snapshots, result.snapshot_epochs, path=paths["snapshots_png"], part=part,
                        pixel_size_m=pixel_size_m)


def read_inputs(sources: Sequence[str], part: Optional[str] = None,
                truth_sources: Optional[Sequence[str]] = None) -> tuple:
    """Read and validate the slices of ``sources`` and, when given, the true slices (same shape), for the engine;
    errors name the files. Returns (images (N, H, W), truth or None)."""
    images, _meta = io.read_images(sources, part=part, min_size=MIN_SIZE)
    truth = None
    if truth_sources:
        truth, _ = io.read_images(truth_sources, part=part, min_size=MIN_SIZE)
        if truth.shape != images.shape:
            raise io.InputError(f"{', '.join(truth_sources)}: truth has shape {truth.shape} but the inputs "
                                f"{', '.join(sources)} have {images.shape}; give one true slice per input slice")
    return validate_images(images, name=", ".join(sources)), truth


def separate_files(sources: Sequence[str], out_path: str, options: SeparationOptions | None = None, *,
                   part: str | None = None, truth_sources: Sequence[str] | None = None, overwrite: bool = False,
                   progress: bool = True, members: Sequence[int] | None = None,
                   gather: Callable | None = None, image_part: str | None = None,
                   pixel_size_m: float | None = None) -> SeparationResult | None:
    """Read slices from files, separate them, and write ``OUT.h5`` + TIFF + PNG (see :func:`output_paths`).
    ``image_part``, ``pixel_size_m``: labels and scale bars of the figures (:func:`write_result_files`).

    Every output path is checked before fitting (an existing file is an error unless ``overwrite``); all writes are
    atomic. ``gather`` (MPI) combines the member outputs of all ranks and returns them in member order on the
    writing rank, None elsewhere; such ranks return None.
    """
    options = options or SeparationOptions()
    paths = output_paths(out_path)
    writing = gather is None or gather.is_root  # type: ignore[attr-defined]
    if writing:
        for key in output_keys(options):
            io.check_output_path(paths[key], overwrite)
    x, truth = read_inputs(sources, part, truth_sources)
    if (options.checkpoint_every or options.resume) and not options.checkpoint_path:
        options = dataclasses.replace(options, checkpoint_path=out_path + ".ckpt")
    outs = fit_members(x, options, members, truth=truth, progress=progress, rank=getattr(gather, "rank", 0))
    if gather is not None:
        outs = gather(outs)
        if not writing:
            return None
    result = assemble_result(x, outs, options)
    result.config["sources"] = list(sources)
    result.config["part"] = part
    write_result_files(paths, result, truth, overwrite, image_part=image_part, pixel_size_m=pixel_size_m)
    if options.checkpoint_path:  # the result is safely written: the checkpoints are no longer needed
        for k in range(options.ensemble):
            ck = member_checkpoint(options, k)
            if ck and os.path.exists(ck):
                os.remove(ck)
    return result


# ----------------------------------------------------------------------------------------------- sweeps

def sweep_paths(out_path: str, settings: Sequence[Setting]) -> dict:
    """``OUT.h5`` -> one result per setting ``OUT_<filters>_g<gamma>.h5``, ``OUT_sweep.png/.json/.md`` and
    ``OUT_auto.json`` (the choice of ``--gamma-excl auto``)."""
    stem = out_path[:-3] if out_path.endswith(".h5") else os.path.splitext(out_path)[0]
    d = {s: f"{stem}_{s.label}.h5" for s in settings}
    d.update({"png": stem + "_sweep.png", "json": stem + "_sweep.json", "md": stem + "_sweep.md",
              "auto_json": stem + "_auto.json", "uncertainty_png": stem + "_uncertainty.png"})
    return d


def _write_json(path: str, data: dict, overwrite: bool) -> None:
    with io.atomic_write(path, overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)


def write_sweep(out_path: str, inputs: np.ndarray, runs: Sequence, config: dict, truth: Optional[np.ndarray] = None,
                ghosts: Optional[np.ndarray] = None, overwrite: bool = False,
                say: Callable[[str], None] = print) -> list:
    """Write every run (HDF5 + TIFF + PNG, as ``separate`` does), the comparison figure and the metrics table."""
    settings = [s for s, _ in runs]
    paths = sweep_paths(out_path, settings)
    part = config.get("part")
    for s, r in runs:
        write_result_files(output_paths(paths[s]), r, truth, overwrite, image_part=part)
    rows = sweep_rows(runs, truth, ghosts)
    sweep_figure(inputs, runs, truth=truth, path=paths["png"], part=part)
    if any(r.std is not None for _, r in runs):
        uncertainty_figure(runs, path=paths["uncertainty_png"], part=part)
    _write_json(paths["json"], {"config": config, "rows": rows}, overwrite)
    table = rows_markdown(rows)
    with io.atomic_write(paths["md"], overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        fh.write(table + "\n")
    say(table)
    return rows


def _check_sweep_outputs(out_path: str, base: SeparationOptions, settings: Sequence[Setting],
                         overwrite: bool) -> None:
    paths = sweep_paths(out_path, settings)
    for s in settings:
        p = output_paths(paths[s])
        for key in output_keys(base):
            io.check_output_path(p[key], overwrite)
    for key in ("png", "json", "md"):
        io.check_output_path(paths[key], overwrite)


def _sweep_config(sources: Sequence[str], part: Optional[str], base: SeparationOptions,
                  settings: Sequence[Setting]) -> dict:
    return {"sources": list(sources), "part": part, "base": base.to_dict(),
            "settings": [dataclasses.asdict(s) for s in settings]}


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
    return write_sweep(out_path, x, runs, _sweep_config(sources, part, base, settings), truth=truth,
                       overwrite=overwrite)


def auto_gamma_files(sources: Sequence[str], out_path: str, options: SeparationOptions, candidates: Sequence[float],
                     *, part: Optional[str] = None, truth_sources: Optional[Sequence[str]] = None,
                     overwrite: bool = False, progress: bool = True, comm=None, rule: str = "crosstalk",
                     say: Callable[[str], None] = print) -> Optional[SeparationResult]:
    """``--gamma-excl auto`` (``method="paper"`` only, :func:`~ptycho_ddip.separation.sweep.auto_gammas`): fit every
    candidate gamma with the full ``options`` (a sweep, spread over MPI ranks), write the sweep's files
    (:func:`sweep_paths`), choose gamma with :func:`~ptycho_ddip.separation.sweep.choose_gamma` on the final outputs,
    and write the chosen run as the separation's own ``OUT.h5`` (+ TIFF, PNG) and the choice as ``OUT_auto.json``.
    Costs one fit per candidate (the chosen one is not refitted). Checkpoints are not used. Returns the chosen result
    on rank 0, None elsewhere.

    Why full-length fits and not a short sweep: the crosstalk estimate of outputs after a quarter of the epochs
    ranked the gammas less well (docs/results.md), since slice 1 is cleaned late in the fit."""
    auto_gammas(options)  # refuses the estimated mixing
    options = dataclasses.replace(options, checkpoint_every=0, resume=False, checkpoint_path=None)
    settings = [Setting(options.filters, float(g)) for g in candidates]
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
    rows = write_sweep(out_path, x, runs, _sweep_config(sources, part, options, settings), truth=truth,
                       overwrite=overwrite, say=say)
    gamma = choose_gamma(rows, rule)
    chosen = next(r for s, r in runs if s.gamma == gamma)
    chosen.config.update({"sources": list(sources), "part": part,
                          "auto_gamma": {"rule": rule, "candidates": [float(c) for c in candidates]}})
    write_result_files(chosen_paths, chosen, truth, overwrite)
    _write_json(auto_json, {"rule": rule, "epochs": options.epochs, "rows": rows, "gamma_excl": gamma}, overwrite)
    say(f"--gamma-excl auto: chose {gamma:g} (rule {rule}: smallest truth-free crosstalk estimate; {auto_json})")
    return chosen
