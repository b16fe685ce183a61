"""Crosstalk benchmark: how much of each slice a multislice reconstruction puts on the other slices, over a matrix of
probes, slice spacings, sample pairs and doses, and what pass 1, more epochs, the peers' depth regularisers and the
pipeline do about it. Results: ``docs/crosstalk_benchmark.md`` (table, regimes), its JSON and transfer-function
figures.

Usage::

    python benchmarks/crosstalk_matrix.py --small                    # 12 cases at 128 x 128, one at a time
    python benchmarks/crosstalk_matrix.py --small --workers 2        # two at a time (one thread each; on 2 cores
                                                                     # about 50 min idle, 94 min shared with 2 jobs)
    python benchmarks/crosstalk_matrix.py --small --redo pipeline    # rerun the pipeline rows (after it changed)
    python benchmarks/crosstalk_matrix.py --small --redo verdict     # only the pipeline's report and verdict again
    mpiexec -n 8 python benchmarks/crosstalk_matrix.py               # the full matrix (120 cases), cases over ranks
    python benchmarks/crosstalk_matrix.py --small --report-only      # rebuild table, JSON and figures from OUT

Every case writes ``OUT/<case>/case.json`` (and its files) as it goes; a rerun skips finished rows and cases, so an
interrupted run continues where it stopped. The report (rank 0, after every case) writes ``--json``, the table
between the markers of ``--doc`` and the figures in ``--figures``.

Per case (a dataset simulated with ground truth: :func:`ptycho_ddip.multislice.simulate.simulate`):

* rows: ``pass1`` (the pipeline's first pass, defaults), ``separation`` (the pipeline's DDIP output),
  ``pipeline`` (its pass 2, the pipeline's final slices, defaults), ``equal`` (a plain reconstruction with as many
  epochs as pass 1 and pass 2 together, from the same random start), ``kz`` and ``zcorr`` (the same effort with the
  depth regularisers, default weights);
* per row and slice, inside the scanned box: **crosstalk** = the ghost-to-signal ratio of
  :func:`ptycho_ddip.separation.metrics.separation_metrics` (the slice's phase regressed on its own true phase and on
  the other true slices' high-pass, band-pass and low-pass images; ratio of the other slices' part to its own) and the
  correlation with the true slice; per reconstruction row the data loss (:func:`ptycho_ddip.pipeline.data_loss`)
  against the true object's;
* the measured crosstalk **transfer functions** T_ij(|k|) of pass 1 (:func:`transfer_functions`) with their
  anisotropy and a regime label per leak (:func:`leak_regime`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# ------------------------------------------------------------------------------------------------ the matrix

#: probe -> simulation options. "focused": the demos' zone plate (20 nm outer zone, NA 2.6 mrad at 12 keV, central
#: stop 0.4, 30 um defocus, beam ~160 nm); "gaussian": a low-NA Gaussian beam (170 nm FWHM, flat phase, ~0.2
#: mrad); "defocused": the same zone plate 60 um from focus (beam ~310 nm, same NA).
PROBES = {
    "focused": {"probe": "focused"},
    "gaussian": {"probe": "gaussian", "probe_fwhm_m": 170e-9},
    "defocused": {"probe": "focused", "defocus_m": 60e-6},
}
#: sample pair -> phantom (:mod:`ptycho_ddip.phantoms`)
PAIRS = {
    "strong-weak": "litho-cell",      # 0.78 rad lithographic pattern over 0.15 rad cells
    "weak-strong": "cell-litho",      # the strong scatterer downstream
    "moderate": "au-nio",             # 0.34 rad Au particles over 0.56 rad NiO spheres
    "three": "litho-cell-nio",        # litho / cells / NiO spheres
}
SPACINGS_DOF = (0.5, 1.0, 2.0, 3.5, 5.0)
DOSES = (1e5, 1e7)


@dataclasses.dataclass(frozen=True)
class Case:
    """One dataset of the matrix."""

    probe: str
    pair: str
    spacing_dof: float
    dose: float
    size: int = 128
    probe_px: int = 64
    step_px: float = 4.0

    @property
    def name(self) -> str:
        return f"{self.probe}_{self.pair}_{self.spacing_dof:g}dof_{self.dose:.0e}".replace("+0", "")

    def simulation(self, seed: int = 0) -> dict:
        return {"phantom": PAIRS[self.pair], "shape": (self.size, self.size),
                "probe_shape": (self.probe_px, self.probe_px), "step_px": float(self.step_px), "spacing_dof": float(self.spacing_dof), "dose": float(self.dose), "seed": seed,
                **PROBES[self.probe]}


def full_matrix(size: int = 128) -> list:
    """Every combination: 3 probes x 5 spacings x 4 pairs x 2 doses = 120 cases."""
    return [Case(p, s, d, n, size) for p in PROBES for s in PAIRS for d in SPACINGS_DOF for n in DOSES]


def small_matrix(size: int = 128) -> list:
    """12 cases: the spacing sweep with the low-NA probe on strong-over-weak, then one change at a time from the
    2-DOF case (pair, dose, probe), and the three-slice sample."""
    g = "gaussian"
    return [Case(g, "strong-weak", d, 1e7, size) for d in SPACINGS_DOF] + [
        Case(g, "weak-strong", 2.0, 1e7, size), Case(g, "moderate", 2.0, 1e7, size),
        Case(g, "strong-weak", 2.0, 1e5, size), Case("focused", "strong-weak", 2.0, 1e7, size),
        Case("focused", "strong-weak", 0.5, 1e7, size), Case("defocused", "strong-weak", 2.0, 1e7, size),
        Case(g, "three", 2.0, 1e7, size)]


# ------------------------------------------------------------------------------------------------ analysis

def _spectra(images: np.ndarray) -> np.ndarray:
    """FFT of each mean-subtracted, Hann-windowed image of a (N, h, w) stack."""
    x = np.asarray(images, dtype=np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    win = np.outer(np.hanning(x.shape[1]), np.hanning(x.shape[2]))
    return np.fft.fft2(x * win)


def transfer_functions(outputs: np.ndarray, truth: np.ndarray, n_bands: int = 12, n_sectors: int = 4,
                       k_max: float = 0.5) -> dict:
    """Measured crosstalk transfer functions of a reconstruction.

    In each ring of radial frequency b (``n_bands`` rings of equal width from 0 to ``k_max`` cycles/pixel, DC
    excluded), the spectrum of output slice i is regressed (complex least squares over the ring's Fourier samples)
    on the spectra of all true slices j:  O_i(k) = sum_j T_ij(b) S_j(k) + residual.  T_ii is the own transfer (1 =
    perfect), T_ij (j != i) the leak of true slice j into output slice i, in the images' units (phase: rad per rad).
    Both stacks are mean-subtracted and Hann-windowed. ``se`` is the standard error of each T_ij(b) (from the
    residual variance and (X^H X)^-1): where the source slice has little power in a ring, T is not determined there.
    The same fit in ``n_sectors`` orientation sectors (angle mod 180 deg) gives the anisotropy index
    A_ij = sum_b p_jb std_s|T_ij,s(b)| / sum_b p_jb mean_s|T_ij,s(b)| over the rings where se < 0.1, p_jb the power
    of true slice j in ring b (0 = isotropic; noise alone gives about se / |T|).

    Returns a dict: ``k`` (n_bands,) ring centres in cycles/pixel, ``T`` (N, N, n_bands) complex, ``se`` (N, N,
    n_bands), ``T_sector`` (N, N, n_bands, n_sectors), ``power`` (N, n_bands) power of each true slice per ring
    (normalised to sum 1), ``r2`` (N, n_bands) fraction of each output's ring power explained, ``anisotropy`` (N, N).
    """
    outputs, truth = np.asarray(outputs, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    n, h, w = truth.shape
    O, S = _spectra(outputs), _spectra(truth)
    ky, kx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    kr = np.hypot(ky, kx)
    ang = np.mod(np.arctan2(ky, kx), np.pi)
    edges = np.linspace(0.0, k_max, n_bands + 1)
    T = np.zeros((n, n, n_bands), complex)
    se = np.full((n, n, n_bands), np.inf)
    Ts = np.zeros((n, n, n_bands, n_sectors), complex)
    power = np.zeros((n, n_bands))
    r2 = np.zeros((n, n_bands))

    def fit(mask):
        X = S[:, mask].T  # (n_k, N_true)
        Y = O[:, mask].T  # (n_k, N_out)
        if X.shape[0] <= n:
            return np.full((n, n), np.nan + 0j), np.full((n, n), np.inf), np.zeros(n)
        coef, *_ = np.linalg.lstsq(X, Y, rcond=None)  # (N_true, N_out)
        resid = Y - X @ coef
        rss = (np.abs(resid) ** 2).sum(axis=0)
        tot = (np.abs(Y) ** 2).sum(axis=0)
        cov = np.real(np.diag(np.linalg.pinv(X.conj().T @ X)))  # (N_true,)
        sig2 = rss / (X.shape[0] - n)
        err = np.sqrt(np.outer(sig2, np.maximum(cov, 0.0)))  # (N_out, N_true)
        return coef.T, err, 1.0 - rss / np.where(tot > 0, tot, 1.0)

    for b in range(n_bands):
        ring = (kr > edges[b]) & (kr <= edges[b + 1]) & (kr > 0)
        T[:, :, b], se[:, :, b], r2[:, b] = fit(ring)
        power[:, b] = (np.abs(S[:, ring]) ** 2).sum(axis=1)
        for q in range(n_sectors):
            sec = ring & (ang >= q * np.pi / n_sectors) & (ang < (q + 1) * np.pi / n_sectors)
            Ts[:, :, b, q] = fit(sec)[0]
    power = power / np.maximum(power.sum(axis=1, keepdims=True), 1e-300)
    mag = np.abs(Ts)
    aniso = np.full((n, n), np.nan)
    with warnings.catch_warnings():  # sectors without samples (tiny images) are NaN and left out
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(n):
            for j in range(n):
                p = power[j] * (se[i, j] < 0.1)
                den = np.nansum(p * np.nanmean(mag[i, j], axis=-1))
                if den > 0:
                    aniso[i, j] = np.nansum(p * np.nanstd(mag[i, j], axis=-1)) / den
    return {"k": 0.5 * (edges[:-1] + edges[1:]), "T": T, "se": se, "T_sector": Ts, "power": power, "r2": r2,
            "anisotropy": aniso}


def leak_regime(k: np.ndarray, leak: np.ndarray, power: np.ndarray, se: np.ndarray | None = None,
                floor: float = 0.05, max_se: float = 0.1) -> dict:
    """Shape and strength of one leak T_ij(|k|) (complex, per ring).

    Only rings holding at least 1 % of the source slice's power and (given ``se``) measured to better than
    ``max_se`` count. ``strength`` = max |T| over them. The shape is ``"none"`` (strength < ``floor``),
    ``"oscillating"`` (Re T changes sign between counted rings where |Re T| > 30 % of the strength and > 2 se), else
    from the mean |T| over the low, middle and high thirds of the counted rings (lo, mid, hi): ``"band-pass"``
    (mid >= 1.5 max(lo, hi)), ``"low-pass"`` (lo >= 2 hi), ``"high-pass"`` (hi >= 2 lo), ``"all-pass"`` otherwise.
    Also returns ``mean`` (power-weighted mean of Re T over the counted rings), ``k_range`` (the counted rings' first
    and last centre), ``k_half`` (the first counted ring where |T| drops below half the mean |T| of the low third;
    NaN when it does not) and ``k_flip`` (the first counted ring where Re T, larger than 2 se, has the opposite sign
    of the low third's mean; NaN when none).
    """
    leak, power = np.asarray(leak), np.asarray(power)
    se = np.zeros(leak.shape) if se is None else np.asarray(se)
    use = (power >= 0.01 * power.max()) & np.isfinite(leak) & (se < max_se)
    nan = {"shape": "n/a", "strength": float("nan"), "mean": float("nan"), "k_range": [float("nan")] * 2,
           "k_half": float("nan"), "k_flip": float("nan")}
    if use.sum() < 3:
        return nan
    t, e = leak[use], se[use]
    kk = np.asarray(k)[use]
    strength = float(np.max(np.abs(t)))
    mean = float(np.sum(power[use] * t.real) / np.sum(power[use]))
    low = float(np.mean(np.array_split(np.abs(t), 3)[0]))
    below = np.flatnonzero(np.abs(t) < 0.5 * low)
    below = below[below > 0]
    low_sign = np.sign(np.mean(np.array_split(t.real, 3)[0]))
    flips = np.flatnonzero((np.sign(t.real) == -low_sign) & (np.abs(t.real) > 2 * e))
    out = {"strength": strength, "mean": mean, "k_range": [float(kk[0]), float(kk[-1])],
           "k_half": float(kk[below[0]]) if below.size else float("nan"),
           "k_flip": float(kk[flips[0]]) if flips.size else float("nan")}
    if strength < floor:
        return {"shape": "none", **out}
    big = (np.abs(t.real) > 0.3 * strength) & (np.abs(t.real) > 2 * e)
    signs = np.sign(t.real[big])
    if signs.size >= 2 and np.any(signs[1:] != signs[:-1]):
        return {"shape": "oscillating", **out}
    thirds = np.array_split(np.abs(t), 3)
    lo, mid, hi = (float(np.mean(p)) for p in thirds)
    if mid >= 1.5 * max(lo, hi):
        shape = "band-pass"
    elif lo >= 2 * hi:
        shape = "low-pass"
    elif hi >= 2 * lo:
        shape = "high-pass"
    else:
        shape = "all-pass"
    return {"shape": shape, **out}


def _tf_json(tf: dict, wavelength_m: float, pixel_m: float, slice_pos_m: np.ndarray) -> dict:
    """JSON-ready transfer functions with the regime of every leak and the Fresnel phase of each ring."""
    n = tf["T"].shape[0]
    k_per_m = tf["k"] / pixel_m
    leaks = []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            dz = abs(float(slice_pos_m[i] - slice_pos_m[j]))
            regime = leak_regime(tf["k"], tf["T"][i, j], tf["power"][j], tf["se"][i, j])
            for key in ("half", "flip"):
                regime[f"chi_{key}_rad"] = math.pi * wavelength_m * dz * (regime[f"k_{key}"] / pixel_m) ** 2
            leaks.append({"to": i + 1, "from": j + 1, "dz_m": dz, **regime,
                          "anisotropy": float(tf["anisotropy"][i, j]),
                          "chi_rad": (math.pi * wavelength_m * dz * k_per_m**2).tolist()})
    return {"k_per_px": tf["k"].tolist(), "T_real": tf["T"].real.tolist(), "T_imag": tf["T"].imag.tolist(),
            "se": np.where(np.isfinite(tf["se"]), tf["se"], 1e9).tolist(),
            "power": tf["power"].tolist(), "r2": tf["r2"].tolist(), "anisotropy": tf["anisotropy"].tolist(),
            "own": [float(np.sum(tf["power"][i] * tf["T"][i, i].real)) for i in range(n)], "leaks": leaks}


def score(images: np.ndarray, truth: np.ndarray) -> list:
    """Per-slice crosstalk (ghost-to-signal ratio) and correlation against the truth (both in the box)."""
    from ptycho_ddip.separation.metrics import separation_metrics

    rows = separation_metrics(images, truth, ghosts=None)
    return [{"crosstalk": r["ghost_to_signal"], "correlation": r["correlation"]} for r in rows]


# ------------------------------------------------------------------------------------------------ one case

def _save_json(path: str, obj: Any, indent: int | None = 1) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, default=float)
    os.replace(tmp, path)


def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def pipeline_options(threads: int = 1, overrides: dict | None = None) -> dict:
    """The current pipeline defaults, on the CPU with ``threads`` threads (the benchmark's 'pipeline' row), with
    ``overrides`` (a partial PipelineOptions dict, e.g. shorter runs for tests) merged per stage."""
    base = {"pass1": {"device": "cpu"}, "pass2": {"device": "cpu"}, "separation": {"device": "cpu", "threads": threads}}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return base


ROWS = ("pipeline", "equal", "kz", "zcorr")


def _git_commit() -> str | None:
    """The repository's HEAD commit (short), or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_case(case: Case, outdir: str, threads: int = 1, rows: Sequence[str] = ROWS, overrides: dict | None = None,
             log=print, redo: Sequence[str] = ()) -> dict:
    """Simulate (once), run every row not yet in ``OUTDIR/<case>/case.json``, score, and save after each row.

    ``rows`` chooses among ``pipeline`` (which also gives the ``pass1`` and ``separation`` rows), ``pass1`` (alone,
    without the pipeline), ``equal``, ``kz`` and ``zcorr``; ``overrides`` changes the pipeline options (and so the
    effort of the other rows); ``redo`` names rows to run again although they are recorded (``pipeline`` reruns the
    pipeline's separation and pass 2 after the pipeline changed, keeping its pass 1). Each row records the git commit it ran at."""
    import torch

    from ptycho_ddip.io import read_dataset, read_reconstruction, read_separation_result, write_dataset
    from ptycho_ddip.multislice.physics import wavelength_m
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, reconstruct
    from ptycho_ddip.multislice.simulate import simulate
    from ptycho_ddip.parallel import Communicator
    from ptycho_ddip.pipeline import PipelineOptions, data_loss, run_pipeline, scan_box, slice_part
    from ptycho_ddip.pipeline_report import read_box
    from ptycho_ddip.slices import within

    torch.set_num_threads(threads)
    cdir = os.path.join(outdir, case.name)
    os.makedirs(cdir, exist_ok=True)
    data = os.path.join(cdir, "data.h5")
    if not os.path.exists(data):
        write_dataset(data, simulate(case.simulation()), overwrite=True)
    ds = read_dataset(data)
    path = os.path.join(cdir, "case.json")
    result = _load_json(path) if os.path.exists(path) else {}
    popts = PipelineOptions.from_dict(pipeline_options(threads, overrides))
    gt = ds.ground_truth_object
    box = scan_box(ds.positions_px, ds.probe, gt.shape[1:], popts.scan_threshold)
    crop = lambda stack: np.asarray(stack)[:, box[0]:box[1], box[2]:box[3]]  # noqa: E731
    truth = crop(slice_part(gt, "phase", box))
    if "case" not in result:
        result.update({"case": dataclasses.asdict(case), "name": case.name, "box": list(box),
                       "n_slices": int(gt.shape[0]), "slice_pos_m": np.asarray(ds.slice_pos_m).tolist(),
                       "wavelength_m": wavelength_m(ds.energy_ev), "pixel_size_m": ds.pixel_size_m,
                       "truth_phase_std": [float(s.std()) for s in truth],
                       "truth_data_loss": data_loss(ds, popts.pass1, gt), "rows": {}})
        _save_json(path, result)

    def phase(obj):
        return crop(slice_part(obj, "phase", box))

    def record(name, images, obj=None, epochs=None, seconds=None, extra=None):
        entry = {"slices": score(images, truth)}
        if obj is not None:
            entry["data_loss"] = data_loss(ds, popts.pass1, obj)
            entry["data_loss_ratio"] = entry["data_loss"] / result["truth_data_loss"]
        entry.update({"epochs": epochs, "seconds": seconds, "commit": commit, **(extra or {})})
        result["rows"][name] = entry
        _save_json(path, result)
        xt = ", ".join(f"{s['crosstalk']:.3f}" for s in entry["slices"])
        log(f"[{case.name}] {name}: crosstalk {xt}" + (f", data loss / truth {entry['data_loss_ratio']:.3f}"
                                                          if obj is not None else ""))

    lam, pix = result["wavelength_m"], result["pixel_size_m"]
    commit = _git_commit()
    if "pipeline" in redo:  # rerun the later stages; pass 1 (same options, same data: same result) is kept
        pdir = os.path.join(cdir, "pipeline")
        keep = {"pass1.h5", "pass1_phase.tiff", "pass1_magnitude.tiff", "pass1.png"}
        for name in os.listdir(pdir) if os.path.isdir(pdir) else []:
            if name not in keep:
                os.remove(os.path.join(pdir, name))
    if "verdict" in redo:  # only the pipeline's report (and verdict) again, e.g. after the verdict changed
        pdir = os.path.join(cdir, "pipeline")
        for name in ("metrics.json", "summary.png"):
            if os.path.exists(os.path.join(pdir, name)):
                os.remove(os.path.join(pdir, name))
    force = False
    for name in redo:
        for row in (("pass1", "separation", "pipeline") if name in ("pipeline", "verdict") else (name,)):
            result["rows"].pop(row, None)
    if "pipeline" in rows and "pipeline" not in result["rows"]:
        t0 = time.perf_counter()
        out = run_pipeline(data, os.path.join(cdir, "pipeline"), popts, force=force, progress=False,
                           comm=Communicator(None), verbose=False)
        seconds = time.perf_counter() - t0
        p1 = read_reconstruction(out["files"]["pass1"])
        p2 = read_reconstruction(out["files"]["pass2"])
        sep = read_separation_result(out["files"]["separation"])
        t1 = out.get("timings_s", {})
        tf = transfer_functions(phase(p1["object"]), truth)
        record("pass1", phase(p1["object"]), p1["object"], len(p1["loss"]), t1.get("pass1"),
               {"transfer": _tf_json(tf, lam, pix, result["slice_pos_m"])})
        # the separation as it seeds pass 2 (the slices' totals since the pipeline seeds with them)
        sep_images = sep.get("extra", {}).get("totals") if popts.pass2_seed == "totals" else None
        sep_images = np.asarray(sep["separated"] if sep_images is None else sep_images)
        record("separation", within(sep_images, read_box(out["files"]), box), None, None, t1.get("separation"))
        tf2 = transfer_functions(phase(p2["object"]), truth)
        record("pipeline", phase(p2["object"]), p2["object"], len(p1["loss"]) + len(p2["loss"]), seconds,
               {"transfer": _tf_json(tf2, lam, pix, result["slice_pos_m"])})
    if "pass1" in rows and "pipeline" not in rows and "pass1" not in result["rows"]:  # without the pipeline
        t0 = time.perf_counter()
        res = reconstruct(ds, popts.pass1, progress=False)
        np.save(os.path.join(cdir, "pass1_object.npy"), res.object)
        tf = transfer_functions(phase(res.object), truth)
        record("pass1", phase(res.object), res.object, int(res.loss.size), time.perf_counter() - t0,
               {"transfer": _tf_json(tf, lam, pix, result["slice_pos_m"])})
    effort = popts.pass1.epochs + popts.pass2.epochs
    variants = {"equal": {}, "kz": {"depth_reg": "kz"}, "zcorr": {"depth_reg": "zcorr"}}
    for name, extra in variants.items():
        if name not in rows or name in result["rows"]:
            continue
        opts = dataclasses.replace(popts.pass1, epochs=effort, **extra)
        opts = ReconstructionOptions.from_dict(opts.to_dict())  # validate (fills the regulariser's default weight)
        t0 = time.perf_counter()
        res = reconstruct(ds, opts, progress=False)
        seconds = time.perf_counter() - t0
        np.save(os.path.join(cdir, f"{name}_object.npy"), res.object)
        tf = transfer_functions(phase(res.object), truth)
        record(name, phase(res.object), res.object, int(res.loss.size), seconds,
               {"transfer": _tf_json(tf, lam, pix, result["slice_pos_m"]),
                "depth_reg_weight": opts.depth_reg_weight})
    return result


def _run_case_job(job: tuple) -> str:
    case, outdir, threads, rows, redo = job
    t0 = time.perf_counter()
    run_case(case, outdir, threads, rows, log=lambda s: print(s, flush=True), redo=redo)
    return f"{case.name}: {time.perf_counter() - t0:.0f} s"


# ------------------------------------------------------------------------------------------------ report

def _row_object(cdir: str, row: str):
    """The final object of a row, from the files the case wrote (None when absent)."""
    from ptycho_ddip.io import read_reconstruction

    files = {"pass1": os.path.join(cdir, "pipeline", "pass1.h5"), "pipeline": os.path.join(cdir, "pipeline", "pass2.h5")}
    if row in files and os.path.exists(files[row]):
        return read_reconstruction(files[row])["object"]
    npy = os.path.join(cdir, f"{row}_object.npy")
    return np.load(npy) if os.path.exists(npy) else None


def refresh_transfer(outdir: str, result: dict) -> dict:
    """Recompute every row's transfer functions from the saved objects with this module's analysis (so that the
    analysis can change without rerunning the reconstructions)."""
    from ptycho_ddip.io import read_dataset
    from ptycho_ddip.pipeline import slice_part

    cdir = os.path.join(outdir, result["name"])
    gt = read_dataset(os.path.join(cdir, "data.h5")).ground_truth_object
    y0, y1, x0, x1 = result["box"]
    truth = slice_part(gt, "phase", result["box"])[:, y0:y1, x0:x1]
    for row, entry in result["rows"].items():
        obj = _row_object(cdir, row)
        if obj is None or "transfer" not in entry:
            continue
        images = slice_part(obj, "phase", result["box"])[:, y0:y1, x0:x1]
        tf = transfer_functions(images, truth)
        entry["transfer"] = _tf_json(tf, result["wavelength_m"], result["pixel_size_m"], result["slice_pos_m"])
    return result


def load_results(outdir: str, cases: Sequence[Case]) -> list:
    out = []
    for c in cases:
        p = os.path.join(outdir, c.name, "case.json")
        if os.path.exists(p):
            out.append(_load_json(p))
    return out


def _compare(value: float, reference: float) -> str:
    if not (math.isfinite(value) and math.isfinite(reference)) or reference <= 0:
        return "n/a"
    r = value / reference
    return "better" if r < 0.9 else ("worse" if r > 1.1 else "same")


def regime_text(result: dict, row: str = "pass1", min_strength: float = 0.1) -> str:
    """The pass-1 leaks of a case, e.g. '2<-1 low-pass 0.45 (A 0.1)', strongest first; 'none' when all are weak."""
    tr = result["rows"].get(row, {}).get("transfer")
    if not tr:
        return "n/a"
    leaks = [lk for lk in tr["leaks"] if math.isfinite(lk["strength"]) and lk["strength"] >= min_strength]
    leaks.sort(key=lambda lk: -lk["strength"])
    if not leaks:
        return "none above 0.1"
    def one(lk):
        text = f"{lk['to']}<-{lk['from']} {lk['shape']} {lk['strength']:.2f}"
        notes = [f"{what} at chi {lk.get(f'chi_{key}_rad', float('nan')):.1f}"
                 for key, what in (("half", "half"), ("flip", "sign flip"))
                 if math.isfinite(lk.get(f"chi_{key}_rad", float("nan")))]
        return text + (f" ({', '.join(notes)})" if notes else "")

    return "; ".join(one(lk) for lk in leaks)


def summary(results: list) -> dict:
    """Headline numbers: cases with pass-1 slice crosstalk > 0.1, and the pipeline against pass 1 and the
    equal-effort baseline per such slice (better < 0.9x, same, worse > 1.1x)."""
    head = {"cases": len(results), "cases_with_crosstalk": 0, "slices_with_crosstalk": 0,
            "pipeline_vs_pass1": {"better": 0, "same": 0, "worse": 0, "n/a": 0},
            "pipeline_vs_equal": {"better": 0, "same": 0, "worse": 0, "n/a": 0},
            "kz_vs_equal": {"better": 0, "same": 0, "worse": 0, "n/a": 0},
            "zcorr_vs_equal": {"better": 0, "same": 0, "worse": 0, "n/a": 0},
            "pass1_converged": 0, "pass1_loss_ratio_max": 0.0}
    for r in results:
        rows = r["rows"]
        if "pass1" not in rows:
            continue
        p1 = rows["pass1"]
        ratio = p1.get("data_loss_ratio", float("nan"))
        head["pass1_converged"] += int(ratio <= 1.1)
        head["pass1_loss_ratio_max"] = max(head["pass1_loss_ratio_max"], ratio)
        hit = False
        for i, s in enumerate(p1["slices"]):
            if s["crosstalk"] <= 0.1:
                continue
            hit = True
            head["slices_with_crosstalk"] += 1
            for key, row, ref in (("pipeline_vs_pass1", "pipeline", "pass1"), ("pipeline_vs_equal", "pipeline", "equal"),
                                  ("kz_vs_equal", "kz", "equal"), ("zcorr_vs_equal", "zcorr", "equal")):
                if row in rows and ref in rows:
                    head[key][_compare(rows[row]["slices"][i]["crosstalk"], rows[ref]["slices"][i]["crosstalk"])] += 1
                else:
                    head[key]["n/a"] += 1
        head["cases_with_crosstalk"] += int(hit)
    return head


ROW_ORDER = ("pass1", "equal", "kz", "zcorr", "separation", "pipeline")


def markdown_table(results: list) -> str:
    """One block of rows per case: crosstalk / correlation per slice, data loss / truth's, epochs, regime."""
    lines = ["| case | row | epochs | data loss / truth | " + "crosstalk (corr) per slice | pass-1 leaks (regime) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        rows = r["rows"]
        first = True
        for name in ROW_ORDER:
            if name not in rows:
                continue
            e = rows[name]
            xt = " / ".join(f"{s['crosstalk']:.3f} ({s['correlation']:.3f})" for s in e["slices"])
            dl = f"{e['data_loss_ratio']:.3f}" if "data_loss_ratio" in e else ""
            ep = "" if e.get("epochs") is None else str(e["epochs"])
            lines.append(f"| {r['name'] if first else ''} | {name} | {ep} | {dl} | {xt} | "
                         f"{regime_text(r) if first else ''} |")
            first = False
    return "\n".join(lines)


def headline_text(head: dict) -> str:
    fmt = lambda d: ", ".join(f"{k} {v}" for k, v in d.items() if v)  # noqa: E731
    return "\n".join([
        f"- cases: {head['cases']}; pass 1 within 10 % of the true object's data loss in {head['pass1_converged']} "
        f"(worst ratio {head['pass1_loss_ratio_max']:.3f})",
        f"- cases with a pass-1 slice crosstalk above 0.1: {head['cases_with_crosstalk']} "
        f"({head['slices_with_crosstalk']} slices)",
        f"- on those slices, the pipeline against pass 1: {fmt(head['pipeline_vs_pass1'])}",
        f"- the pipeline against the equal-effort reconstruction: {fmt(head['pipeline_vs_equal'])}",
        f"- kz against the equal-effort reconstruction: {fmt(head['kz_vs_equal'])}",
        f"- zcorr against the equal-effort reconstruction: {fmt(head['zcorr_vs_equal'])}",
        "  (better: < 0.9 x the reference's crosstalk; worse: > 1.1 x)"])


def write_doc_table(doc: str, results: list, head: dict) -> None:
    """Replace the text between ``<!-- matrix:start -->`` and ``<!-- matrix:end -->`` of ``doc``."""
    start, end = "<!-- matrix:start -->", "<!-- matrix:end -->"
    block = f"{start}\n{headline_text(head)}\n\n{markdown_table(results)}\n{end}"
    if os.path.exists(doc):
        with open(doc, encoding="utf-8") as fh:
            text = fh.read()
        if start in text and end in text:
            text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = "# Crosstalk benchmark\n\n" + block + "\n"
    tmp = doc + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, doc)


def plot_case(result: dict, path: str, row: str = "pass1") -> None:
    """T_ij of one case against |k| (left) and against the Fresnel phase chi = pi lambda dz |k|^2 (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = result["rows"][row]["transfer"]
    k = np.asarray(tr["k_per_px"]) / result["pixel_size_m"] * 1e-6  # cycles / um
    T = np.where(np.asarray(tr["se"]) < 0.1, np.asarray(tr["T_real"]), np.nan)  # undetermined rings left out
    n = T.shape[0]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(n):
        a1.plot(k, T[i, i], "-", color=colours[i], lw=2, label=f"own T{i + 1}{i + 1}")
    c = n
    for lk in tr["leaks"]:
        i, j = lk["to"] - 1, lk["from"] - 1
        style = dict(color=colours[c % len(colours)], ls="--", marker="o", ms=3)
        label = f"leak T{i + 1}{j + 1} ({lk['shape']}, A {lk['anisotropy']:.2f})"
        a1.plot(k, T[i, j], label=label, **style)
        a2.plot(lk["chi_rad"], T[i, j], label=f"T{i + 1}{j + 1}, dz {lk['dz_m'] * 1e6:.1f} um", **style)
        c += 1
    for a in (a1, a2):
        a.axhline(0, color="k", lw=0.5)
        a.set_ylabel("Re T (rad / rad)")
        a.legend(fontsize=7)
    a1.set_xlabel("|k| (cycles / um)")
    a2.set_xlabel("Fresnel phase chi = pi lambda dz |k|^2 (rad)")
    a2.set_xscale("log")
    fig.suptitle(f"{result['name']}: measured transfer functions of {row} (phase; rings with standard error "
                 f"> 0.1 left out)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_summary(results: list, path: str) -> None:
    """Every two-slice case's leaks (pass 1) against chi, one panel per leak direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    styles = {"gaussian": "-", "focused": "--", "defocused": ":"}
    cmap = plt.get_cmap("viridis")
    for r in results:
        tr = r["rows"].get("pass1", {}).get("transfer")
        if not tr or r["n_slices"] != 2:
            continue
        T = np.where(np.asarray(tr["se"]) < 0.1, np.asarray(tr["T_real"]), np.nan)
        colour = cmap(SPACINGS_DOF.index(r["case"]["spacing_dof"]) / (len(SPACINGS_DOF) - 1)) \
            if r["case"]["spacing_dof"] in SPACINGS_DOF else "k"
        for lk in tr["leaks"]:
            ax = axes[0] if lk["to"] == 2 else axes[1]
            ax.plot(lk["chi_rad"], T[lk["to"] - 1, lk["from"] - 1], styles.get(r["case"]["probe"], "-"), color=colour,
                    lw=1.2, label=f"{r['case']['probe']} {r['case']['pair']} {r['case']['spacing_dof']:g} DOF "
                                  f"{r['case']['dose']:.0e}")
    for ax, title in zip(axes, ("leak of slice 1 into slice 2 (T21)", "leak of slice 2 into slice 1 (T12)")):
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("Fresnel phase chi = pi lambda dz |k|^2 (rad)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("Re T (rad / rad)")
    axes[1].legend(fontsize=6, loc="best")
    fig.suptitle("pass-1 leaks of every two-slice case (colour: spacing, line: probe)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _rounded(obj: Any, digits: int = 4) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (a smaller JSON)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def report(results: list, json_path: str, doc: str, figures: str, outdir: str | None = None) -> dict:
    """JSON, the doc's table and the figures; with ``outdir``, the transfer functions are recomputed first."""
    if outdir is not None:
        results = [refresh_transfer(outdir, r) for r in results]
    head = summary(results)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    _save_json(json_path, _rounded({"summary": head, "cases": results}), indent=None)
    write_doc_table(doc, results, head)
    os.makedirs(figures, exist_ok=True)
    for r in results:
        if "pass1" in r["rows"] and "transfer" in r["rows"]["pass1"]:
            plot_case(r, os.path.join(figures, f"tf_{r['name']}.png"))
    plot_summary(results, os.path.join(figures, "tf_summary.png"))
    return head


# ------------------------------------------------------------------------------------------------ driver

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the 12-case set (default: the full 120-case matrix)")
    ap.add_argument("--size", type=int, default=128, help="object size, pixels (probe 64 x 64)")
    ap.add_argument("--out", default="crosstalk_runs", help="working directory (one folder per case)")
    ap.add_argument("--cases", default="", help="comma-separated substrings: run only cases whose name has one")
    ap.add_argument("--workers", type=int, default=1, help="cases run at a time (processes; serial runs only)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per case")
    ap.add_argument("--rows", default="pipeline,equal,kz,zcorr", help="rows to run")
    ap.add_argument("--redo", default="", help="comma-separated rows to run again although recorded (e.g. pipeline)")
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from OUT without running")
    ap.add_argument("--json", default=os.path.join("docs", "crosstalk_benchmark.json"))
    ap.add_argument("--doc", default=os.path.join("docs", "crosstalk_benchmark.md"))
    ap.add_argument("--figures", default=os.path.join("docs", "figures", "crosstalk"))
    args = ap.parse_args(argv)

    from ptycho_ddip.parallel import get_comm

    comm = get_comm()
    cases = small_matrix(args.size) if args.small else full_matrix(args.size)
    if args.cases:
        keys = [c for c in args.cases.split(",") if c]
        cases = [c for c in cases if any(k in c.name for k in keys)]
    rows = tuple(r for r in args.rows.split(",") if r)
    if not args.report_only:
        mine = cases[comm.rank::comm.size]
        redo = tuple(r for r in args.redo.split(",") if r)
        jobs = [(c, args.out, args.threads, rows, redo) for c in mine]
        t0 = time.perf_counter()
        if args.workers > 1 and comm.size == 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(args.workers) as pool:
                for line in pool.imap_unordered(_run_case_job, jobs):
                    print(line, flush=True)
        else:
            for case in mine:
                t1 = time.perf_counter()
                run_case(case, args.out, args.threads, rows, log=lambda s: print(s, flush=True), redo=redo)
                print(f"{case.name}: {time.perf_counter() - t1:.0f} s", flush=True)
        print(f"rank {comm.rank}: {len(mine)} cases in {time.perf_counter() - t0:.0f} s", flush=True)
        comm.barrier()
    if comm.is_root:
        results = load_results(args.out, cases)
        head = report(results, args.json, args.doc, args.figures, args.out)
        print(headline_text(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
