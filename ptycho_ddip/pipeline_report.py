"""The pipeline's report: data losses, metrics against the truth where the data hold it, the truth-free shared-edge
index of every stage, the verdict that decides which stage's slices are final, ``metrics.json`` and its table."""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

import numpy as np

from .io import InputError
from .multislice.reconstruct import ReconstructionOptions
from .pipeline_options import PipelineOptions
from .slices import crop, slice_part, within

__all__ = ["data_loss", "format_metrics", "shared_edges", "shared_edge_pairs", "explained_by", "verdict",
           "apply_verdict", "read_box", "seed_images", "can_verify", "VERDICT_RATIO", "KEEP_DOMINANT",
           "MAX_VERIFIED_SLICES"]

#: pass 2's slices are final when their shared-edge index is at most this fraction of pass 1's; otherwise the
#: pipeline returns pass 1's slices (measured on the crosstalk benchmark: clean pass-1 slices 0.07-0.09 with the
#: separation at 0.95-1.6 x that; crosstalk 0.37-0.90 brought to 0.12-0.4 x)
VERDICT_RATIO = 0.8
#: ... and when pass 1's dominant slice is still explained by pass 1's slices to at least this R^2 (:func:`verdict`)
KEEP_DOMINANT = 0.85
#: pass 2 can be verified without ground truth for at most this many slices; with more, pass 1's slices are final.
#: On both three-slice reconstructions measured (docs/crosstalk_benchmark.md: 2 and 5 depths of field) pass 2 made
#: the weak middle slice worse (ghost-to-signal 17.5 -> 27.0 and 17.2 -> 34.7) while every pair of slices shared
#: fewer edges, so the shared-edge index would present a worse result as a success.
MAX_VERIFIED_SLICES = 2


def can_verify(n_slices: int) -> bool:
    """Whether the verdict can accept pass 2 for a sample of ``n_slices`` slices (:data:`MAX_VERIFIED_SLICES`)."""
    return n_slices <= MAX_VERIFIED_SLICES


def read_box(paths: dict, which: str = "box") -> tuple:
    """A box (y0, y1, x0, x1) the separation stage recorded in ``separation_input.h5``: ``"box"`` the separation
    box, ``"scan_box"`` the scanned box inside it (where the verdict decides and the metrics are taken; files
    written before there were two boxes hold one, which serves as both)."""
    import h5py

    with h5py.File(paths["separation_input"], "r") as h5:
        return tuple(int(v) for v in h5.attrs.get(which, h5.attrs["box"]))


def seed_images(paths: dict, options: PipelineOptions) -> np.ndarray:
    """The separation output that seeds pass 2 (``options.pass2_seed``), (N, h, w) inside the box."""
    from .io import read_separation_result

    sep = read_separation_result(paths["separation"])
    if options.pass2_seed == "separated":
        return np.asarray(sep["separated"])
    extra = sep.get("extra", {})
    if options.pass2_seed == "totals":
        if "totals" not in extra:
            raise InputError(f"{paths['separation']}: holds no 'totals' (written by an older version); rerun the "
                             "separation stage (--force) or use pass2_seed='separated'")
        return np.asarray(extra["totals"])
    if "ghost_removed" not in extra:
        raise InputError(f"{paths['separation']}: has no ghost_removed dataset (written by an older version); rerun "
                         "the separation stage (--force) or use pass2_seed='separated'")
    return np.asarray(extra["ghost_removed"])


def shared_edge_pairs(images: np.ndarray) -> np.ndarray:
    """(N, N) gradient correlation (:func:`~ptycho_ddip.separation.metrics.gradient_correlation`, 5 scales, both
    directions) of every pair of slices of (N, H, W) images; the diagonal is 0."""
    from .separation.metrics import gradient_correlation

    n = images.shape[0]
    g = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            g[i, j] = g[j, i] = gradient_correlation(images[i], images[j])
    return g


def shared_edges(images: np.ndarray) -> list:
    """Truth-free crosstalk index of each slice of (N, H, W) images: the mean over the other slices of the gradient
    correlation (:func:`shared_edge_pairs`). Slices that show each other's features share their edges (pass 1 at a
    few depths of field: 0.4-0.9); distinct slices share few (the true slices of the benchmark: 0.06-0.12). It needs
    no ground truth."""
    return shared_edges_of(shared_edge_pairs(images))


def explained_by(image: np.ndarray, sources: np.ndarray) -> float:
    """R^2 of ``image`` regressed (least squares) on a constant and, for every source image, the image itself, its
    low-pass (Gaussian 3 px) and its high-pass (minus a 1 px blur): how much of it the sources' bands explain."""
    from scipy import ndimage

    cols = [np.ones(image.size)]
    for s in sources:
        cols += [s.ravel(), ndimage.gaussian_filter(s, 3.0).ravel(), (s - ndimage.gaussian_filter(s, 1.0)).ravel()]
    x = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(x, image.ravel(), rcond=None)
    var = float(np.var(image))
    return 1.0 - float(np.var(image.ravel() - x @ coef)) / var if var > 0 else 1.0


def verdict(pass1_images: np.ndarray, pass2_images: np.ndarray) -> dict:
    """Which slices are final (no ground truth needed). Pass 2's, when all hold:

    * its slices share clearly fewer edges: shared-edge index at most ``VERDICT_RATIO`` x pass 1's;
    * its dominant slice (largest phase spread in pass 1) is still pass 1's: at least ``KEEP_DOMINANT`` of it is
      explained by pass 1's slices (:func:`explained_by`). The crosstalk of a reconstruction falls on the weak slice
      next to a strong one, while the strong slice comes out right; a separation that lost the strong slice's
      content also lowers the shared-edge index, and this catches it (benchmark: 0.93-1.0 where the pipeline
      helped, 0.67 where a separation turned the strong slice into noise);
    * there are at most ``MAX_VERIFIED_SLICES`` slices. With three, pass 2 made the weak middle slice worse on every
      reconstruction measured while all pairs shared fewer edges: the index cannot vouch for it.

    Otherwise pass 1's (the separation did not make the slices more distinct, did so by losing a slice, or cannot
    be verified, so its result is not presented as one)."""
    g1, g2 = shared_edge_pairs(pass1_images), shared_edge_pairs(pass2_images)
    n = g1.shape[0]
    e1, e2 = float(np.mean(shared_edges_of(g1))), float(np.mean(shared_edges_of(g2)))
    ratio = e2 / e1 if e1 > 0 else float("inf")
    dominant = int(np.argmax(np.std(pass1_images, axis=(1, 2))))
    kept = explained_by(pass2_images[dominant], pass1_images)
    verifiable = can_verify(n)
    final = "pass2" if verifiable and ratio <= VERDICT_RATIO and kept >= KEEP_DOMINANT else "pass1"
    if final == "pass2":
        what = "pass 2 shares fewer edges between slices and keeps the dominant slice: its slices are final"
    elif not verifiable:
        what = (f"with {n} slices the index cannot vouch for pass 2 (on the three-slice reconstructions measured it "
                f"made the weak middle slice worse while sharing fewer edges): pass 1's slices are final")
    elif ratio > VERDICT_RATIO:
        what = "pass 2 does not share clearly fewer edges between slices than pass 1: pass 1's slices are final"
    else:
        what = (f"pass 2 lost the dominant slice {dominant + 1} (only {kept:.2f} of it explained by pass 1, "
                f"< {KEEP_DOMINANT:g}): pass 1's slices are final")
    return {"final": final, "shared_edges_pass1": e1, "shared_edges_pass2": e2, "ratio": ratio,
            "threshold": VERDICT_RATIO, "dominant_slice": dominant + 1, "dominant_explained": kept,
            "pairs_pass1": g1.tolist(), "pairs_pass2": g2.tolist(),
            "reason": f"shared-edge index {e1:.3f} after pass 1, {e2:.3f} after pass 2 ({ratio:.2f} x; "
                      + (f"pass 2 is kept at <= {VERDICT_RATIO:g} x" if verifiable else
                         f"not used with more than {MAX_VERIFIED_SLICES} slices") + f"); {what}"}


def shared_edges_of(g: np.ndarray) -> list:
    """Per slice, the mean of a pair matrix (:func:`shared_edge_pairs`) over the other slices."""
    n = g.shape[0]
    return [float(np.mean([g[i, j] for j in range(n) if j != i])) for i in range(n)]


def _rejected_paths(paths: dict) -> dict:
    d = os.path.dirname(paths["pass2"])
    return {name: os.path.join(d, name.replace("pass2", "pass2_rejected"))
            for name in ("pass2.h5", "pass2_phase.tiff", "pass2_magnitude.tiff", "pass2.png")}


def apply_verdict(paths: dict, options: PipelineOptions) -> dict:
    """Decide (:func:`verdict`) which stage's slices are final and make ``pass2.h5`` hold them: when pass 1 wins,
    pass 2's outputs are kept as ``pass2_rejected*`` and ``pass2.h5`` (+ TIFFs) becomes a copy of pass 1's result
    whose config says so (``final_from``, ``verdict``). Idempotent: a rerun finds the rejected pass 2 again, and
    restores it when the (changed) verdict now accepts it."""
    from .io import read_reconstruction, write_reconstruction

    rejected = _rejected_paths(paths)
    candidate = rejected["pass2.h5"] if os.path.exists(rejected["pass2.h5"]) else paths["pass2"]
    p1, p2 = read_reconstruction(paths["pass1"]), read_reconstruction(candidate)
    box, part = read_box(paths, "scan_box"), options.part
    result = verdict(crop(slice_part(p1["object"], part, box), box), crop(slice_part(p2["object"], part, box), box))
    if result["final"] == "pass1" and candidate == paths["pass2"]:
        d = os.path.dirname(paths["pass2"])
        for name, target in rejected.items():
            if os.path.exists(os.path.join(d, name)):
                os.replace(os.path.join(d, name), target)
        config = {**p1["config"], "stage": "pass2", "final_from": "pass1", "verdict": result["reason"]}
        write_reconstruction(paths["pass2"], {**p1, "config": config}, overwrite=True)
        candidate = rejected["pass2.h5"]
    elif result["final"] == "pass2" and candidate != paths["pass2"]:  # an earlier verdict refused it: restore it
        d = os.path.dirname(paths["pass2"])
        for name, source in rejected.items():
            if os.path.exists(source):
                os.replace(source, os.path.join(d, name))
        candidate = paths["pass2"]
    result["candidate"] = os.path.basename(candidate)  # where pass 2's own result is now
    return result


def data_loss(dataset, options: ReconstructionOptions, obj: np.ndarray, probe: Optional[np.ndarray] = None,
              chunk: int = 64) -> float:
    """Mean over positions of the reconstruction loss (``options.loss``) of object ``obj`` (complex
    (n_slices, H, W)) with ``probe`` (default: the dataset's), evaluated once (no optimisation)."""
    import torch

    from .multislice.reconstruct import Reconstructor

    ds = dataset if probe is None else dataclasses.replace(dataset, probe=np.asarray(probe))
    opts = dataclasses.replace(options, epochs=0, init="constant", checkpoint_every=0, checkpoint_path=None,
                               resume=False, device="cpu")
    rec = Reconstructor(ds, opts, initial_object=obj)
    n = rec.positions.shape[0]
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, chunk):
            total += float(rec.position_losses(torch.arange(i, min(i + chunk, n))).sum())
    return total / n


def _report(dataset, options: PipelineOptions, paths: dict, data_path: str) -> dict:
    """Decide which slices are final (:func:`apply_verdict`), then write metrics.json and summary.png from the stage
    files (rank 0). The stages reported are pass 1, the separation (the images that seed pass 2) and pass 2 (kept
    or rejected); ``metrics["verdict"]`` says which is final and why, ``shared_edges`` the truth-free index of each
    stage's slices beside the true crosstalk (``slices``) where the data hold the truth."""
    from .io import read_reconstruction, read_separation_result, save_config_json
    from .separation.metrics import separation_metrics

    decision = apply_verdict(paths, options)
    p1 = read_reconstruction(paths["pass1"])
    p2 = read_reconstruction(os.path.join(os.path.dirname(paths["pass2"]), decision["candidate"]))
    sep = read_separation_result(paths["separation"])
    box, sep_box = read_box(paths, "scan_box"), read_box(paths)
    part = options.part
    stages = {"pass1": crop(slice_part(p1["object"], part, box), box),
              "separation": within(seed_images(paths, options), sep_box, box),
              "pass2": crop(slice_part(p2["object"], part, box), box)}
    gt = dataset.ground_truth_object
    truth = None
    if gt is not None and gt.shape == p1["object"].shape:
        truth = crop(slice_part(gt, part, box), box)
    metrics: dict = {"data": os.path.abspath(data_path), "part": part, "box": list(box),
                     "separation_box": list(sep_box),
                     "ground_truth": truth is not None, "stages": {}, "verdict": decision,
                     "final": decision["final"]}
    for name, images in stages.items():
        entry: dict = {"shared_edges": shared_edges(images)}
        if name in ("pass1", "pass2"):
            res = p1 if name == "pass1" else p2
            opts = getattr(options, name)
            entry["data_loss"] = data_loss(dataset, opts, res["object"], res["probe"])
            entry["last_epoch_loss"] = float(res["loss"][-1]) if len(res["loss"]) else None
            entry["epochs"] = int(len(res["loss"]))
        else:
            loss = np.asarray(sep["loss"])
            entry["mismatch"] = float(loss[-1, 2]) if loss.size else None
            entry["total_loss"] = float(loss[-1, 1]) if loss.size else None
            entry["alpha"] = np.asarray(sep["alpha"]).tolist()
            entry["epochs"] = int(loss.shape[0])
            entry["input_correlation"] = _input_correlation(images, stages["pass1"])
            metrics.setdefault("warnings", []).extend(_swap_warnings(entry["input_correlation"]))
        if truth is not None:
            entry["slices"] = separation_metrics(images, truth, ghosts=None)
        metrics["stages"][name] = entry
    if truth is not None:
        try:
            metrics["truth_data_loss"] = data_loss(dataset, options.pass1, gt)
        except InputError:
            metrics["truth_data_loss"] = None
    from .plotting import summary_figure

    summary_figure(stages, truth, p1["loss"], p2["loss"], np.asarray(sep["loss"]), part, paths["summary"],
                   pixel_size_m=dataset.pixel_size_m)
    save_config_json(paths["metrics"], metrics, overwrite=True)
    return metrics


def _input_correlation(separated: np.ndarray, inputs: np.ndarray) -> list:
    """|Pearson correlation| of separated slice i with input slice j, as a nested list [i][j]."""
    from .separation.metrics import correlation

    n = separated.shape[0]
    return [[abs(correlation(separated[i], inputs[j])) for j in range(n)] for i in range(n)]


def _swap_warnings(corr: list) -> list:
    """Warn when a separated slice resembles another input slice more than its own (the DDIP swapped the slices
    or put one slice's content on both): the pass-2 seed is then poor, and pass 2 has to undo it."""
    out = []
    for i, row in enumerate(corr):
        j = int(np.argmax(row))
        if j != i:
            out.append(f"separated slice {i + 1} correlates more with input slice {j + 1} ({row[j]:.2f}) than with "
                       f"its own input ({row[i]:.2f}): the DDIP swapped or mixed the slices; check separation.png "
                       f"(try separation ghost_kinds swapped, another seed, or an ensemble)")
    return out


# ------------------------------------------------------------------------------------------------ figures

def format_metrics(metrics: Mapping) -> str:
    """The metric table of a ``metrics.json`` as text: one row per stage and slice, the truth-free shared-edge index
    beside the true crosstalk (ghost/signal) and quality where the data hold the truth, then the verdict."""
    head = (f"{'stage':<11}{'data loss':>15}  {'slice':>5}{'shared edges':>14}{'ghost/signal':>14}{'corr':>8}"
            f"{'PSNR':>8}{'SSIM':>8}")
    lines = [f"metrics of the {metrics.get('part', 'phase')} inside the scanned box {metrics.get('box')} "
             f"(y0, y1, x0, x1); shared edges: truth-free crosstalk index (0 = distinct slices)"
             + ("" if metrics.get("ground_truth") else "; no ground truth in the data"), head]
    for name, entry in metrics.get("stages", {}).items():
        if name == "separation":
            loss = entry.get("mismatch")
            loss_txt = f"{'mis. ' + format(loss, '.4e') if loss is not None else '':>15}"
        else:
            loss = entry.get("data_loss")
            loss_txt = f"{loss:>15.4e}" if loss is not None else f"{'':>15}"
        edges = entry.get("shared_edges") or []
        slices = entry.get("slices") or [None] * max(len(edges), 1)
        for i, m in enumerate(slices):
            first = f"{name:<11}{loss_txt}" if i == 0 else f"{'':<11}{'':>15}"
            e = f"{edges[i]:>14.3f}" if i < len(edges) else f"{'':>14}"
            truth = ("" if m is None else f"{m['ghost_to_signal']:>14.4f}{m['correlation']:>8.4f}{m['psnr']:>8.2f}"
                                           f"{m['ssim']:>8.4f}")
            lines.append(f"{first}  {i + 1:>5}{e}{truth}")
    if metrics.get("truth_data_loss") is not None:
        lines.append(f"{'truth':<11}{metrics['truth_data_loss']:>15.4e}  (true object and probe: the noise floor)")
    decision = metrics.get("verdict")
    if decision:
        final = "pass 2" if decision["final"] == "pass2" else "pass 1 (pass 2 kept as pass2_rejected.h5)"
        lines.append(f"final slices (pass2.h5): {final}; {decision['reason']}")
    lines += [f"warning: {warning}" for warning in metrics.get("warnings", [])]
    return "\n".join(lines)
