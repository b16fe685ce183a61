"""The crosstalk-mitigation pipeline: reconstruct -> separate with DDIP -> reconstruct again from the separated slices.

Stages (each writes into ``OUTDIR``; a stage whose output exists is not redone, see *Resume*):

1. ``pass1``: multislice reconstruction of the data (:class:`ReconstructionOptions` ``pass1``; e.g. a random start
   at large slice spacing, or the XRF-seeded start at small spacing). Writes ``pass1.h5`` (+ ``pass1_phase.tiff``,
   ``pass1_magnitude.tiff``) and ``pass1.png``.
2. ``separation``: the chosen ``part`` of every slice (``"phase"`` by default, or ``"magnitude"``) inside the
   *separation box* is separated with the modified DDIP (:class:`SeparationOptions` ``separation``). The *scanned
   box* is the bounding box of the pixels whose summed probe intensity over the scan exceeds ``scan_threshold``
   (0.1) of its maximum (at least 32 x 32 px): there the metrics are taken and the verdict decides. The separation
   box is wider: the pixels above ``separation_threshold`` (0.01), the probe's tails included, which gives the DDIP
   more of each slice (on the crosstalk benchmark's 0.5-depth-of-field case it turned a separation that lost the
   strong slice into one after which pass 2 took the weak slice's crosstalk from 9.8 to 1.1); far outside it the
   object is unconstrained noise that would only distort the joint normalisation.
   Writes ``separation_input.h5`` (``images``, and ``truth`` when the data hold ground truth; attributes ``box``
   (the separation box) and ``scan_box`` = y0, y1, x0, x1), ``separation.h5`` (+ TIFFs) and ``separation.png``.
   Phases are taken as ``angle(O e^{-i c}) + c`` with c the phase of the slice's mean inside the box, so that an
   overall phase offset does not wrap.
3. ``pass2``: a second reconstruction (``pass2`` options) whose initial guess is pass 1's object with the separated
   part put back inside the separation box (``pass2_seed``, by default each slice's *totals*: the separated slice
   with what pass 1 put of it into the other slices, so that the slices still add up to pass 1's); for
   ``part="phase"`` the seed is ``|O_1| exp(i phi_sep)`` (the separated phase with pass 1's magnitude); for
   ``part="magnitude"`` it is ``max(m_sep, 1e-3) exp(i phi_1)``. ``pass2.init`` is not used (leave it at its
   default). Writes ``pass2.h5`` (+ TIFFs) and ``pass2.png``.
4. ``report``: first the **verdict** (:func:`ptycho_ddip.pipeline_report.verdict`, no ground truth needed): pass 2's
   slices are final only when they share clearly fewer edges than pass 1's (shared-edge index at most
   ``VERDICT_RATIO`` x pass 1's) and keep pass 1's dominant slice, and there are at most ``MAX_VERIFIED_SLICES``
   (2) of them (with three, pass 2 made the middle slice worse on every reconstruction measured); otherwise
   ``pass2.h5`` is made a copy of pass 1's result (its config says
   ``final_from: pass1`` and why) and pass 2's own result is kept as ``pass2_rejected.h5``. Then ``metrics.json``
   and ``summary.png`` (the slices after pass 1, after the separation and after pass 2, the true slices, the loss
   curves); the metric table is also printed, with each stage's truth-free shared-edge index. With ground truth,
   every stage's slices are scored inside the scanned box with
   :func:`ptycho_ddip.separation.metrics.separation_metrics` (``ghosts=None``: the band images of the other true
   slice are the ghost regressors): ghost-to-signal ratio, correlation, PSNR, SSIM. Each pass also gets its data
   loss, evaluated at its final object and probe (mean over positions of the reconstruction loss), and the true
   object's data loss with the dataset's probe (the noise floor).

``OUTDIR/config.json`` holds the effective :class:`PipelineOptions` (it can be passed back with ``--config``).

Resume. Every write is atomic, so an existing stage output is complete. Run again, the pipeline skips every stage
whose output exists as long as no earlier stage was redone, and continues a stage that was interrupted from its
checkpoint (``pass1.h5.ckpt``, ``separation.h5.ckpt[.memberK]``, ``pass2.h5.ckpt``, written every
``checkpoint_every`` reconstruction epochs and every ``separation_checkpoint_every`` DDIP epochs). A directory that
holds a run with other options (``config.json`` differs in anything but devices, threads and checkpoint intervals)
or from another dataset is refused; ``force=True`` (``--force``) deletes the previous outputs and starts over.

MPI. Under ``mpiexec -n R`` the passes are data parallel (each global minibatch split over the ranks, one
``Allreduce`` of the gradients per step) and the separation ensemble is split over the ranks (member k on rank
k % R); rank 0 alone writes files and prints.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .io import InputError
from .multislice.reconstruct import ReconstructionOptions
from .pipeline_options import RUN_CONTROL, PipelineOptions, _as_options  # noqa: F401 (PipelineOptions: public)
from .pipeline_options import STAGES  # noqa: F401 (public)
from .pipeline_report import MAX_VERIFIED_SLICES, _report, can_verify, read_box, seed_images
from .pipeline_report import data_loss, format_metrics  # noqa: F401 (public)
from .slices import crop as _crop, scan_box, seed_object, slice_part  # noqa: F401 (public)

__all__ = ["PipelineOptions", "run_pipeline", "pipeline_paths", "scan_box", "seed_object", "slice_part", "data_loss",
           "STAGES", "format_metrics"]

def pipeline_paths(outdir: str | os.PathLike) -> dict:
    """Every file the pipeline writes in ``outdir``, by name."""
    d = os.fspath(outdir)
    j = lambda name: os.path.join(d, name)  # noqa: E731
    return {"config": j("config.json"), "pass1": j("pass1.h5"), "pass1_png": j("pass1.png"),
            "separation_input": j("separation_input.h5"), "separation": j("separation.h5"),
            "separation_png": j("separation.png"), "pass2": j("pass2.h5"), "pass2_png": j("pass2.png"),
            "summary": j("summary.png"), "metrics": j("metrics.json")}


_STAGE_FILES = {
    "pass1": ("pass1.h5", "pass1_phase.tiff", "pass1_magnitude.tiff", "pass1.png"),
    "separation": ("separation_input.h5", "separation.h5", "separation_separated.tiff", "separation_std.tiff",
                   "separation.png"),
    "pass2": ("pass2.h5", "pass2_phase.tiff", "pass2_magnitude.tiff", "pass2.png"),
    "report": ("summary.png", "metrics.json"),
}


def _comparable(d: Mapping) -> dict:
    flat = json.loads(json.dumps(dict(d)))
    for key in RUN_CONTROL:
        parts = key.split(".")
        target = flat
        for p in parts[:-1]:
            target = target.get(p, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target.pop(parts[-1], None)
    return flat


def _differences(a: Any, b: Any, prefix: str = "") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _prepare_outdir(outdir: str, options: PipelineOptions, force: bool) -> None:
    """Create ``outdir``; with ``force`` delete previous outputs; check or write ``config.json``."""
    from .io import load_config, save_config_json

    parent = os.path.dirname(os.path.abspath(outdir))
    if not os.path.isdir(parent):
        raise InputError(f"{outdir}: the directory '{parent}' does not exist. Create it first or choose another -o.")
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise InputError(f"{outdir}: is a file; -o of the pipeline names a directory. Choose another -o.")
    os.makedirs(outdir, exist_ok=True)
    paths = pipeline_paths(outdir)
    if force:
        names = [n for files in _STAGE_FILES.values() for n in files] + ["config.json"]
        for name in os.listdir(outdir):
            if name in names or ".ckpt" in name:
                os.remove(os.path.join(outdir, name))
    current = options.to_dict()
    if os.path.exists(paths["config"]):
        previous = load_config(paths["config"])
        diff = _differences(_comparable(previous), _comparable(current))
        if diff:
            shown = ", ".join(diff[:8]) + (" ..." if len(diff) > 8 else "")
            raise InputError(f"{paths['config']}: {outdir} holds a pipeline run with other options ({shown}); rerun "
                             f"with --force (force=True) to redo it, or choose another -o")
        if previous == json.loads(json.dumps(current)):
            return  # unchanged: leave the file (and its time stamp) alone
    save_config_json(paths["config"], current, overwrite=True)


def _stage_done(paths: dict, data_path: str, fingerprint: str) -> dict:
    """Which stage outputs exist (complete, since writes are atomic); refuses outputs of another dataset, known by
    its content (``DiffractionDataset.fingerprint``; by its path for runs written before fingerprints)."""
    import h5py

    done = {"pass1": os.path.exists(paths["pass1"]),
            "separation": os.path.exists(paths["separation"]) and os.path.exists(paths["separation_input"]),
            "pass2": os.path.exists(paths["pass2"]),
            "report": os.path.exists(paths["metrics"]) and os.path.exists(paths["summary"])}
    if done["pass1"]:
        try:
            with h5py.File(paths["pass1"], "r") as h5:
                cfg = json.loads(h5.attrs.get("config", "{}"))
        except (OSError, ValueError):
            cfg = {}
        source, stored = cfg.get("data"), cfg.get("data_sha256")
        if stored and stored != fingerprint:
            same = source and os.path.abspath(source) == os.path.abspath(data_path)
            why = f"{data_path} has changed since" if same else f"from {source or 'another dataset'}"
            raise InputError(f"{paths['pass1']}: was reconstructed from other data ({why}); rerun with --force "
                             f"(force=True) to start over, or choose another -o")
        if not stored and source and os.path.abspath(source) != os.path.abspath(data_path):
            raise InputError(f"{paths['pass1']}: was reconstructed from {source}, not {data_path}; rerun with --force "
                             f"(force=True) to start over, or choose another -o")
    return done


# ------------------------------------------------------------------------------------------------ stages

def _reconstruct_stage(name: str, data_id: dict, dataset, opts: ReconstructionOptions, initial_object,
                       paths: dict, comm, progress: bool, callback: Optional[Callable],
                       checkpoint_every: int):
    """Run (or resume) one reconstruction pass; rank 0 writes ``<name>.h5`` + TIFFs + PNG, with ``data_id`` (the
    dataset's path and content fingerprint) in its config."""
    from .io import write_reconstruction
    from .multislice.reconstruct import Reconstructor

    ck = paths[name] + ".ckpt"
    opts = dataclasses.replace(opts, checkpoint_every=checkpoint_every,
                               checkpoint_path=ck if checkpoint_every else None, resume=bool(checkpoint_every))
    rec = comm.agree(Reconstructor, dataset, opts, initial_object=initial_object, rank=comm.rank, size=comm.size,
                     grad_allreduce=comm.allreduce_sum_ if comm.size > 1 else None)
    cb = None if callback is None else (lambda epoch, loss: callback(name, epoch, loss))
    result = rec.run(progress=comm.is_root and progress, callback=cb)
    if comm.is_root:
        out = result.to_dict()
        out["config"] = {**out["config"], **data_id, "stage": name}
        write_reconstruction(paths[name], out, overwrite=True)
        _reconstruction_figure(result.object, result.loss, name, paths[name + "_png"], result.probe,
                               dataset.pixel_size_m)
        if os.path.exists(ck):
            os.remove(ck)
    comm.barrier()
    return result


def _separation_stage(p1: dict, dataset, options: PipelineOptions, paths: dict, comm, progress: bool) -> None:
    """Write the separation input (the chosen part in the separation box, + truth; attributes ``box``, the
    separation box, and ``scan_box``, the scanned box inside it) and run the DDIP on it."""
    import h5py

    from .io import atomic_write
    from .separation_files import separate_files

    obj = p1["object"]
    shape = obj.shape[-2:]
    scanned = scan_box(p1["positions"], p1["probe"], shape, options.scan_threshold)
    if options.crop_to_scan:
        wide = scan_box(p1["positions"], p1["probe"], shape, options.separation_threshold)
        box = (min(wide[0], scanned[0]), max(wide[1], scanned[1]), min(wide[2], scanned[2]), max(wide[3], scanned[3]))
    else:
        box = (0, shape[0], 0, shape[1])
    truth = None
    if dataset.ground_truth_object is not None and dataset.ground_truth_object.shape == obj.shape:
        truth = _crop(slice_part(dataset.ground_truth_object, options.part, box), box)
    inp = paths["separation_input"]
    if comm.is_root:
        with atomic_write(inp, overwrite=True) as tmp, h5py.File(tmp, "w") as h5:
            h5.create_dataset("images", data=_crop(slice_part(obj, options.part, box), box))
            if truth is not None:
                h5.create_dataset("truth", data=truth)
            h5.attrs["box"] = np.asarray(box, dtype=np.int64)
            h5.attrs["scan_box"] = np.asarray(scanned, dtype=np.int64)
            h5.attrs["part"] = options.part
    comm.barrier()
    every = options.separation_checkpoint_every
    sopts = dataclasses.replace(options.separation, checkpoint_every=every,
                                checkpoint_path=paths["separation"] + ".ckpt" if every else None, resume=bool(every))
    kwargs: dict = {}
    if comm.size > 1:
        gather = comm.ensemble_gather(sopts.ensemble)
        kwargs = {"members": gather.members, "gather": gather}
    separate_files([f"{inp}:/images"], paths["separation"], sopts,
                   truth_sources=[f"{inp}:/truth"] if truth is not None else None, overwrite=True,
                   progress=comm.is_root and progress, pixel_size_m=dataset.pixel_size_m, image_part=options.part,
                   **kwargs)
    comm.barrier()


def _reconstruction_figure(obj: np.ndarray, loss: np.ndarray, name: str, path: str, probe=None,
                           pixel_size_m: Optional[float] = None) -> None:
    """``<name>.png``: :func:`ptycho_ddip.plotting.reconstruction_figure` (object, probe, loss)."""
    from .plotting import reconstruction_figure

    reconstruction_figure(obj, loss, name, path, probe=probe, pixel_size_m=pixel_size_m)


# ------------------------------------------------------------------------------------------------ driver

def _remove_new_outdir_on_error(fn: Callable) -> Callable:
    """Decorator: when the run fails (bad data, Ctrl-C) in an output directory that it created and that holds no
    result yet (at most its ``config.json``), remove that directory again: a failed first run leaves no litter."""

    @functools.wraps(fn)
    def wrapper(data_path, outdir, *args, **kwargs):
        created = not os.path.exists(outdir)
        try:
            return fn(data_path, outdir, *args, **kwargs)
        except BaseException:
            if created and os.path.isdir(outdir) and set(os.listdir(outdir)) <= {"config.json"}:
                try:
                    if os.path.exists(os.path.join(outdir, "config.json")):
                        os.remove(os.path.join(outdir, "config.json"))
                    os.rmdir(outdir)
                except OSError:  # another rank removed it first, or a file appeared: leave it
                    pass
            raise

    return wrapper


@_remove_new_outdir_on_error
def run_pipeline(data_path: str | os.PathLike, outdir: str | os.PathLike,
                 options: PipelineOptions | Mapping[str, Any] | None = None, force: bool = False,
                 progress: bool = True, *, comm=None, callback: Optional[Callable] = None,
                 verbose: Optional[bool] = None) -> dict:
    """Run (or resume) the pipeline on a diffraction dataset; see the module docstring for the stages and files.

    Parameters
    ----------
    data_path : the diffraction dataset (HDF5, e.g. from ``ptycho-ddip simulate``).
    outdir : output directory (created; its parent must exist).
    options : :class:`PipelineOptions` or a dict of it (e.g. a parsed config file).
    force : delete the outputs of a previous run in ``outdir`` and redo every stage.
    progress : progress bars (rank 0).
    comm : :class:`ptycho_ddip.parallel.Communicator`; default :func:`ptycho_ddip.parallel.get_comm` (serial unless
        started by ``mpiexec`` with several ranks).
    callback : ``callback(stage, epoch, loss)`` after every reconstruction epoch (``stage`` = "pass1"/"pass2").
    verbose : print stage lines and the metric table (default: ``progress``).

    Returns
    -------
    dict with ``outdir``, ``files`` (name -> path), ``ran`` and ``skipped`` (stage names), ``timings_s``
    (stage -> seconds, this run) and ``metrics`` (the content of ``metrics.json``; None on ranks > 0).

    Examples
    --------
    >>> out = run_pipeline("data.h5", "run1", {"pass1": {"epochs": 20}})  # doctest: +SKIP
    >>> out["metrics"]["stages"]["pass2"]["slices"][0]["ghost_to_signal"]  # doctest: +SKIP
    """
    from .io import read_dataset, read_reconstruction
    from .parallel import get_comm
    from .runtime import configure_threads

    comm = get_comm() if comm is None else comm
    verbose = progress if verbose is None else verbose
    say = (lambda text: print(text, flush=True)) if (verbose and comm.is_root) else (lambda text: None)
    data_path, outdir = os.fspath(data_path), os.fspath(outdir)
    options = comm.agree(_as_options, options)
    dataset = comm.agree(read_dataset, data_path)
    comm.call_on_root(_prepare_outdir, outdir, options, force)
    paths = pipeline_paths(outdir)
    data_id = {"data": os.path.abspath(data_path), "data_sha256": dataset.fingerprint() if comm.is_root else ""}
    done = comm.call_on_root(_stage_done, paths, data_path, data_id["data_sha256"])
    configure_threads(options.separation.threads)
    ran, skipped, timings = [], [], {}
    redo = False  # once a stage runs, every later stage runs too

    def skip(stage: str) -> bool:
        nonlocal redo
        if done[stage] and not redo:
            skipped.append(stage)
            say(f"[pipeline] {stage}: done before, skipped")
            return True
        redo = True
        ran.append(stage)
        return False

    t0 = time.perf_counter()
    if not skip("pass1"):
        say(f"[pipeline] pass1: reconstruction, {options.pass1.epochs} epochs, init {options.pass1.init}, "
            f"{comm.size} rank(s)")
        _reconstruct_stage("pass1", data_id, dataset, options.pass1, None, paths, comm, progress, callback,
                           options.checkpoint_every)
        timings["pass1"] = time.perf_counter() - t0
    p1 = read_reconstruction(paths["pass1"])
    if not can_verify(p1["object"].shape[0]):
        say(f"[pipeline] note: {p1['object'].shape[0]} slices: the verdict will keep pass 1's slices as final (with "
            f"more than {MAX_VERIFIED_SLICES} it cannot verify pass 2 without ground truth); the separation and pass 2 "
            f"still run, for inspection")
    if comm.is_root and "pass1" not in ran and not os.path.exists(paths["pass1_png"]):
        _reconstruction_figure(p1["object"], p1["loss"], "pass1", paths["pass1_png"], p1["probe"],
                               dataset.pixel_size_m)

    t0 = time.perf_counter()
    if not skip("separation"):
        sep = options.separation
        how = "estimated mixing" if sep.method == "estimate" else f"learnable mixing, {sep.filters} filters"
        say(f"[pipeline] separation: DDIP of the {options.part}, {sep.epochs} epochs, {how}, "
            f"ensemble {sep.ensemble}")
        _separation_stage(p1, dataset, options, paths, comm, progress)
        timings["separation"] = time.perf_counter() - t0
        if callback is not None:
            callback("separation", options.separation.epochs, None)

    t0 = time.perf_counter()
    if not skip("pass2"):
        say(f"[pipeline] pass2: reconstruction from the {options.pass2_seed.replace('_', '-')} {options.part}, "
            f"{options.pass2.epochs} epochs")
        seed = seed_object(p1["object"], seed_images(paths, options), read_box(paths), options.part)
        _reconstruct_stage("pass2", data_id, dataset, options.pass2, seed, paths, comm, progress, callback,
                           options.checkpoint_every)
        timings["pass2"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = None
    if not skip("report"):
        metrics = comm.call_on_root(_report, dataset, options, paths, data_path)
        timings["report"] = time.perf_counter() - t0
    elif comm.is_root:
        with open(paths["metrics"], encoding="utf-8") as fh:
            metrics = json.load(fh)
    if comm.is_root and not os.path.exists(paths["pass2_png"]):
        # the figure of the final slices: when the verdict kept pass 1, pass 2's own figure is pass2_rejected.png
        # and pass2.h5 holds pass 1's copy; also redrawn when a finished run lost it
        p2 = read_reconstruction(paths["pass2"])
        name = "final = pass1 (pass 2 rejected)" if p2["config"].get("final_from") == "pass1" else "pass2"
        _reconstruction_figure(p2["object"], p2["loss"], name, paths["pass2_png"], p2["probe"],
                               dataset.pixel_size_m)
    if not comm.is_root:
        metrics = None
    if metrics is not None:
        say(format_metrics(metrics))
        if timings:
            say("[pipeline] time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    comm.barrier()
    return {"outdir": outdir, "files": paths, "ran": ran, "skipped": skipped, "timings_s": timings,
            "metrics": metrics}
