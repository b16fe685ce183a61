"""GPU speed of the project in one process: DDIP epochs, a long fit, ensembles, the forward model, the reconstructor.

    python benchmarks/bench_cuda.py --out results/                 # on a GPU machine (about 2-3 min on an H200)
    python benchmarks/bench_cuda.py --smoke --out /tmp/smoke       # the same code paths on the CPU, tiny sizes

Sections (``--sections``, in this order; each is written to ``bench_cuda.json`` / ``bench_cuda.md`` as soon as it
is done, so a run cut short keeps what it measured):

``epoch``
    seconds per DDIP epoch (``Fit.step``: forward, losses, backward, Adam) at ``--sizes`` for the default estimated
    mixing (the mixing itself estimated beforehand, not timed here) and the paper's learnable mixing
    (``mixing="learn"``, kernel filters), with the peak memory of each fit alone (``torch.cuda.max_memory_allocated``:
    parameters, Adam state, activations). At the first size, candidate settings are timed in the same interleaved
    rounds: cuDNN TF32 off (``torch.backends.cudnn.allow_tf32``, on by default in PyTorch, so the default CUDA fit
    already runs its convolutions in TF32), ``cudnn.benchmark``, the NCHW layout instead of channels-last.
``long``
    the real fitting loop (``fit_members`` + ``assemble_result``, exactly what ``separate`` runs, with its
    per-epoch bookkeeping and its host reads every ``log_every`` epochs) for ``--long-epochs`` epochs at the first
    size, default options, for each of ``--long-mixings`` (``--long-epochs-learn`` for the learnable mixing); the
    time per epoch is the slope between the progress callbacks, and a 10 000-epoch fit is extrapolated as setup +
    10 000 x slope + wrap-up (stated as such). The
    mixing estimate (800 iterations, float64) is timed on the CPU and on the GPU (where ``separate`` runs it when
    the fit runs there), with the difference of the two estimates; the fit uses the device's estimate.
``ensemble``
    K members batched in one network (``member_batch`` = all, the CUDA default) for K in ``--ensembles`` at the first
    size: seconds per epoch, per member, the ratio to K = 1 (goal for K = 4: at most 1.5) and peak memory.
``forward``
    position-evaluations per second of the multislice forward + backward (``benchmarks/bench_forward.py``'s batched
    model, complex64, 2 slices) at ``--windows`` and ``--batches``, with the same figure on the host CPU with 2
    threads (``--cpu-threads``) as the in-run reference of the "2-core CPU" goal.
``reconstruct``
    the reconstructor end to end (``Reconstructor.run_epoch``: minibatches, Adam, host reads), positions per second
    at ``--windows`` and ``--batches``, and the 2-thread CPU figure at the default batch.
``graph``
    for both mixings at the first size, interleaved: the eager epoch; the eager epoch without the host syncs of
    Python-list indexing (``mixing.ghost_terms`` and the loss's slice pairs index CUDA tensors with lists, and each
    such index is a blocking host-to-device copy; here replaced by slicing and device index tensors, same numbers);
    and the whole epoch captured once as a CUDA graph and replayed (a prototype of what the fitting loop could do:
    the sync-free indexing, capturable fused Adam, constant learning rate and exclusion weight, no per-epoch
    Python). Last, because a failed capture can leave the CUDA context unusable.

Every figure is printed beside a float32 matmul GFLOP/s calibration measured on the same device just before it (on
GPUs plain FP32, TF32 off for matmul as is PyTorch's default). Timings synchronise the device around each block,
warm up first and interleave the compared variants over ``--rounds`` rounds (medians reported).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_forward import chunk_for, make_case, matmul_gflops, optimised_step, time_step  # noqa: E402

SECTIONS = ("epoch", "long", "ensemble", "forward", "reconstruct", "graph")


# ----------------------------------------------------------------------------------------------- helpers

def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def calibrate(dev: torch.device, seconds: float) -> float:
    return round(matmul_gflops(dev, seconds), 1)


@contextlib.contextmanager
def cuda_flags(tf32=None, benchmark=None):
    """Set cuDNN's TF32 and benchmark flags for a block (no effect on CPU)."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    if tf32 is not None:
        torch.backends.cudnn.allow_tf32 = tf32
    if benchmark is not None:
        torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = old


@contextlib.contextmanager
def cpu_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_mib(dev: torch.device) -> float:
    if dev.type == "cuda":
        return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return float("nan")  # process-wide RSS peaks say little inside one process; see bench_separation.py


class Report:
    """Rows per section, written to JSON and a markdown table after every section."""

    def __init__(self, out_dir: str, meta: dict):
        self.out_dir = out_dir
        self.data = {"meta": meta, "sections": {}, "goals": [], "errors": {}}
        os.makedirs(out_dir, exist_ok=True)

    def add(self, section: str, row: dict) -> None:
        self.data["sections"].setdefault(section, []).append(row)
        print(f"[{section}] " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    def goal(self, text: str, met) -> None:
        self.data["goals"].append({"goal": text, "met": met})
        print(f"GOAL {text}: {'MET' if met else ('NOT MET' if met is not None else 'n/a')}", flush=True)

    def error(self, section: str, exc: BaseException) -> None:
        self.data["errors"][section] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"ERROR in section {section}:", flush=True)
        traceback.print_exc()

    def save(self) -> None:
        for name, text in (("bench_cuda.json", json.dumps(self.data, indent=1, default=str)),
                           ("bench_cuda.md", self.markdown())):
            path = os.path.join(self.out_dir, name)
            with open(path + ".tmp", "w") as fh:
                fh.write(text)
            os.replace(path + ".tmp", path)

    def markdown(self) -> str:
        m = self.data["meta"]
        lines = [f"# bench_cuda: {m['device_name']}", "",
                 f"torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}, cuDNN TF32 default {m['cudnn_tf32']}, "
                 f"host CPUs {m['host_cpus']}, {m['date']}; command: `{m['command']}`", ""]
        for section, rows in self.data["sections"].items():
            keys = list(dict.fromkeys(k for r in rows for k in r))
            lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
            lines.append("")
        if self.data["goals"]:
            verdict = lambda met: "MET" if met else ("NOT MET" if met is not None else "n/a")  # noqa: E731
            lines += ["## goals", ""] + [f"- {g['goal']}: {verdict(g['met'])}" for g in self.data["goals"]] + [""]
        if self.data["errors"]:
            lines += ["## errors", ""] + [f"- {k}: {v}" for k, v in self.data["errors"].items()] + [""]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- DDIP fits

def blend_target(size: int):
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.separate import normalize_jointly

    b = blend(make_phantom("au-nio", (size, size), seed=0).normalized())
    return b, normalize_jointly(b.inputs)[0]


def quick_mixing(target: np.ndarray, iters: int):
    """A mixing estimate for timing the fit (its values do not change the cost of an epoch)."""
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import estimate_target_mixing

    return estimate_target_mixing(target, SeparationOptions(estimate={"iters": iters}, device="cpu"))


def make_fit(target, mixing_kind: str, dev: torch.device, seeds=(0,), mixing=None, **extra):
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import Fit

    opts = SeparationOptions(device=str(dev), **method_options(mixing_kind), **extra)
    return Fit(target, opts, list(seeds), dev, mixing if mixing_kind == "estimate" else None)


def method_options(kind: str) -> dict:
    """Options of mixing ``kind``: "estimate" (the default method) or "learn" (the learnable mixing with the balanced,
    input-anchored exclusion, the old default of mixing="learn")."""
    return {"method": "estimate"} if kind == "estimate" else {"method": "paper", "learned": {
        "exclusion_balance": True, "exclusion_input": 1.0}}


def eager_stepper(fit):
    def step(epoch):
        fit.step(epoch)
    return step


def _device_ghost_terms():
    """``mixing.ghost_terms`` without Python-list indexing: a list index on a CUDA tensor is first copied from
    pageable host memory with a blocking copy (a host sync, and illegal inside CUDA-graph capture); this version
    selects the other slices with slices and ``torch.cat`` (same numbers)."""
    from ptycho_ddip.separation.mixing import _image, _spectrum

    def ghost_terms(y, m):
        n = y.shape[-3]
        spec = _spectrum(y)
        out = []
        for i in range(n):
            s_j = torch.cat([spec[..., :i, :, :], spec[..., i + 1:, :, :]], dim=-3)
            m_j = torch.cat([m[i, :i], m[i, i + 1:]], dim=0).to(spec.dtype)
            out.append(_image(s_j * m_j, y.shape[-2:]))
        return torch.stack(out, dim=-4)
    return ghost_terms


def sync_free(fit, dev: torch.device):
    """Make ``fit`` index with device tensors instead of Python lists (the loss's slice pairs and anchors) and
    return a context manager that swaps in :func:`_device_ghost_terms` for the fixed-mixing model."""
    import ptycho_ddip.separation.fixed as fixed

    as_dev = lambda v: torch.as_tensor(v, dtype=torch.long, device=dev)  # noqa: E731
    fit.pairs = tuple(as_dev(p) for p in fit.pairs)
    for name in ("anchor", "coarse"):
        value = getattr(fit, name, None)
        if value is not None:
            setattr(fit, name, (as_dev(value[0]), value[1]))
    patched = _device_ghost_terms()

    @contextlib.contextmanager
    def patch():
        orig = fixed.ghost_terms
        fixed.ghost_terms = patched
        try:
            yield
        finally:
            fixed.ghost_terms = orig
    return patch


def sync_free_stepper(fit, dev: torch.device):
    patch = sync_free(fit, dev)

    def step(epoch):
        with patch():
            fit.step(epoch)
    return step


def graph_stepper(fit, dev: torch.device, epoch: int = 200):
    """The whole epoch (forward, losses, backward, Adam) captured once as a CUDA graph and replayed: a prototype
    of what the fitting loop could do (the sync-free indexing of :func:`sync_free`, fixed learning rate and
    exclusion weight, no weight regulariser after epoch 100, capturable fused Adam)."""
    from ptycho_ddip.separation.fit import member_losses

    patch = sync_free(fit, dev)
    params = [p for p in fit.model.parameters() if p.requires_grad]
    try:
        opt = torch.optim.Adam(params, lr=torch.tensor(fit.opts.lr, device=dev), fused=True, capturable=True)
    except (RuntimeError, ValueError, TypeError):
        opt = torch.optim.Adam(params, lr=fit.opts.lr, foreach=True, capturable=True)
    weight = float(fit.opts.gamma_excl)

    def once():
        out = fit.model()
        mis, exc, reg = member_losses(fit.model, out, fit.target, fit.opts, epoch, fit.pairs,
                                       getattr(fit, "anchor", None))
        (mis + weight * exc + reg).sum().backward()
        opt.step()
        return mis

    with patch():
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                once()
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_mis = once()

    def step(_epoch):
        graph.replay()
    step.graph, step.static_mis = graph, static_mis  # kept alive with the stepper
    return step


def interleaved(variants: dict, dev: torch.device, warmup: int, epochs: int, rounds: int, cal_s: float) -> dict:
    """variants: label -> (stepper, flags dict). Returns label -> (median s/epoch, all, calibrations)."""
    for label, (step, flags) in variants.items():
        with cuda_flags(**flags):
            for e in range(warmup):
                step(e)
    sync(dev)
    times = {label: [] for label in variants}
    cals = []
    for r in range(rounds):
        cals.append(calibrate(dev, cal_s))
        for label, (step, flags) in variants.items():
            with cuda_flags(**flags):
                sync(dev)
                t = time.perf_counter()
                for e in range(epochs):
                    step(warmup + r * epochs + e)
                sync(dev)
            times[label].append((time.perf_counter() - t) / epochs)
    return {label: (statistics.median(ts), ts, cals) for label, ts in times.items()}


def fit_peak(target, mixing_kind, dev, seeds, mixing, steps: int = 2) -> float:
    """Peak memory (MiB) of one fit alone: parameters, Adam state and the activations of an epoch."""
    import gc

    gc.collect()
    peak_reset(dev)
    fit = make_fit(target, mixing_kind, dev, seeds, mixing)
    for e in range(steps):
        fit.step(e)
    sync(dev)
    peak = peak_mib(dev)
    del fit
    gc.collect()
    return peak


def section_epoch(rep: Report, args, dev: torch.device) -> None:
    for i, size in enumerate(args.sizes):
        _, target = blend_target(size)
        mix = quick_mixing(target, args.quick_mixing_iters)
        mem = {m: fit_peak(target, m, dev, [0], mix) for m in ("estimate", "learn")}
        fits = {m: make_fit(target, m, dev, [0], mix) for m in ("estimate", "learn")}
        variants = {"estimate (default)": (eager_stepper(fits["estimate"]), {}),
                    "learn (paper)": (eager_stepper(fits["learn"]), {})}
        if i == 0 and not args.no_variants:
            variants["estimate, cuDNN TF32 off"] = (eager_stepper(make_fit(target, "estimate", dev, [0], mix)),
                                                    {"tf32": False})
            variants["learn, cuDNN TF32 off"] = (eager_stepper(make_fit(target, "learn", dev, [0], mix)),
                                                 {"tf32": False})
            variants["estimate, cudnn.benchmark"] = (eager_stepper(make_fit(target, "estimate", dev, [0], mix)),
                                                     {"benchmark": True})
            nchw = make_fit(target, "estimate", dev, [0], mix)
            nchw.model.to(memory_format=torch.contiguous_format)
            variants["estimate, NCHW layout"] = (eager_stepper(nchw), {})
        res = interleaved(variants, dev, args.warmup, args.epochs, args.rounds, args.cal_seconds)
        base = {"estimate": res["estimate (default)"][0], "learn": res["learn (paper)"][0]}
        for label, (t, ts, cals) in res.items():
            kind = "estimate" if label.startswith("estimate") else "learn"
            row = {"device": device_name(dev), "size": size, "variant": label, "s_per_epoch": round(t, 5),
                   "epochs_per_s": round(1 / t, 1), "10k_epochs_s": round(1e4 * t, 1),
                   "vs_default": round(base[kind] / t, 2),
                   "rounds_s_per_epoch": [round(v, 5) for v in ts],
                   "peak_MiB": mem[kind] if label in ("estimate (default)", "learn (paper)") else "",
                   "matmul_GFLOPs": round(statistics.median(cals), 1)}
            rep.add("epoch", row)
        del fits, variants
        rep.save()


def section_graph(rep: Report, args, dev: torch.device) -> None:
    """Eager epochs, eager epochs without the list-index host syncs, and the CUDA-graph prototype (run last: a
    failed capture can leave the context unusable)."""
    size = args.sizes[0]
    _, target = blend_target(size)
    mix = quick_mixing(target, args.quick_mixing_iters)
    variants, graphs = {}, {}
    for m in ("estimate", "learn"):
        variants[f"{m}, eager"] = (eager_stepper(make_fit(target, m, dev, [0], mix)), {})
        variants[f"{m}, eager, no list-index syncs"] = (sync_free_stepper(make_fit(target, m, dev, [0], mix), dev),
                                                        {})
        if dev.type != "cuda":
            rep.add("graph", {"device": device_name(dev), "variant": f"{m}, CUDA graph", "note": "needs CUDA"})
            continue
        try:
            step = graph_stepper(make_fit(target, m, dev, [0], mix), dev)
        except Exception as exc:  # noqa: BLE001 - report and go on
            rep.add("graph", {"device": device_name(dev), "size": size, "variant": f"{m}, CUDA graph",
                              "note": f"capture failed: {type(exc).__name__}: {exc}"})
            traceback.print_exc()
            continue
        variants[f"{m}, CUDA graph"] = (step, {})
        graphs[m] = step
    res = interleaved(variants, dev, args.warmup, args.epochs, args.rounds, args.cal_seconds)
    for label, (t, ts, cals) in res.items():
        eager = res[label.split(",")[0] + ", eager"][0]
        row = {"device": device_name(dev), "size": size, "variant": label, "s_per_epoch": round(t, 5),
               "10k_epochs_s": round(1e4 * t, 1), "vs_eager": round(eager / t, 2),
               "matmul_GFLOPs": round(statistics.median(cals), 1)}
        m = label.split(",")[0]
        if label.endswith("graph") and m in graphs:
            row["mismatch_after_replays"] = float(graphs[m].static_mis.sum())
        rep.add("graph", row)
    rep.save()


def section_long(rep: Report, args, dev: torch.device) -> None:
    from ptycho_ddip.separation.metrics import separation_metrics
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import (assemble_result, estimate_target_mixing, fit_members,
                                                 validate_images)

    size = args.sizes[0]
    b, target = blend_target(size)
    x = validate_images(b.inputs)
    m_in = separation_metrics(b.inputs, b.truth, b.ghosts)
    # the mixing estimate (the default model, float64): on the CPU, and on the device, where separate() runs it
    # when the fit runs on a GPU
    opts = SeparationOptions(device=str(dev), epochs=args.long_epochs, seed=0)
    cal = calibrate(dev, args.cal_seconds)
    t = time.perf_counter()
    mix_cpu = estimate_target_mixing(target, opts)
    t_est_cpu = time.perf_counter() - t
    t_est = t_est_cpu
    mix_fit = mix_cpu
    e = opts.estimate
    row = {"device": device_name(dev), "size": size, "what": f"mixing estimate, {e.iters} iterations",
           "cpu_s": round(t_est_cpu, 2), "host_threads": torch.get_num_threads()}
    if dev.type == "cuda" or args.smoke:
        quick = SeparationOptions(device=str(dev), epochs=1, seed=0, estimate={"iters": 5})
        estimate_target_mixing(target, quick, device=dev)  # warm-up
        sync(dev)
        t = time.perf_counter()
        mix_dev = estimate_target_mixing(target, opts, device=dev)
        sync(dev)
        t_est = time.perf_counter() - t
        row["gpu_s"] = round(t_est, 2)
        row["max_weight_diff_gpu_vs_cpu"] = float(np.max(np.abs(np.asarray(mix_dev.weights)
                                                                - np.asarray(mix_cpu.weights))))
        mix_fit = mix_dev
    row["matmul_GFLOPs"] = cal
    rep.add("long", row)
    rep.save()
    for kind in args.long_mixings:
        epochs = args.long_epochs_learn if kind == "learn" else args.long_epochs
        opts = SeparationOptions(device=str(dev), epochs=epochs, seed=0, **method_options(kind))
        marks = []

        def cb(done, vals, alpha):
            marks.append((done, time.perf_counter()))

        cal = calibrate(dev, args.cal_seconds)
        peak_reset(dev)
        t0 = time.perf_counter()
        outs = fit_members(x, opts, progress=False, callback=cb, mixing=mix_fit if kind == "estimate" else None)
        res = assemble_result(x, outs, opts)
        total = time.perf_counter() - t0
        n = opts.epochs
        first = next((m for m in marks if m[0] >= max(n // 10, 1)), marks[0])
        last = marks[-1]
        slope = (last[1] - first[1]) / max(last[0] - first[0], 1)
        fixed = total - n * slope
        m_out = separation_metrics(res.separated, b.truth, b.ghosts)
        est = t_est if kind == "estimate" else 0.0
        row = {"device": device_name(dev), "size": size, "what": f"fit_members + assemble_result, mixing={kind}",
               "epochs": n, "fit_s": round(total, 2), "s_per_epoch_slope": round(slope, 5),
               "setup_and_wrapup_s": round(fixed, 2),
               "10k_fit_s": round(fixed + 1e4 * slope, 1) if n < 10000 else round(total, 1),
               "10k_fit_plus_estimate_s": round(est + (fixed + 1e4 * slope if n < 10000 else total), 1),
               "extrapolated": n < 10000, "peak_MiB": peak_mib(dev),
               "gsr_in": [round(m["ghost_to_signal"], 4) for m in m_in],
               "gsr_out": [round(m["ghost_to_signal"], 4) for m in m_out], "matmul_GFLOPs": cal}
        rep.add("long", row)
        if kind == "estimate":
            fit10k = row["10k_fit_s"]
            rep.goal(f"10 000 epochs at {size}x{size}, default, under 20 s on {device_name(dev)}: fit "
                     f"{fit10k} s{' (extrapolated from ' + str(n) + ' epochs)' if n < 10000 else ''}, plus "
                     f"{row['10k_fit_plus_estimate_s'] - fit10k:.1f} s of mixing estimate "
                     f"({row['10k_fit_plus_estimate_s']} s in all)", fit10k < 20)
        rep.save()


def section_ensemble(rep: Report, args, dev: torch.device) -> None:
    size = args.sizes[0]
    _, target = blend_target(size)
    mix = quick_mixing(target, args.quick_mixing_iters)
    for kind in args.ensemble_mixings:
        mem = {k: fit_peak(target, kind, dev, list(range(k)), mix) for k in args.ensembles}
        variants = {f"K={k}": (eager_stepper(make_fit(target, kind, dev, list(range(k)), mix)), {})
                    for k in args.ensembles}
        res = interleaved(variants, dev, args.warmup, args.ensemble_epochs, args.rounds, args.cal_seconds)
        t1 = res[f"K={args.ensembles[0]}"][0] / args.ensembles[0]
        for k in args.ensembles:
            t, ts, cals = res[f"K={k}"]
            rep.add("ensemble", {"device": device_name(dev), "size": size, "mixing": kind, "K": k,
                                 "s_per_epoch": round(t, 5), "s_per_epoch_per_member": round(t / k, 5),
                                 "time_vs_one_member": round(t / t1, 2), "peak_MiB": mem[k],
                                 "10k_epochs_s": round(1e4 * t, 1), "matmul_GFLOPs": round(statistics.median(cals), 1)})
            if k == 4 and args.ensembles[0] == 1:
                rep.goal(f"{kind}: 4-member ensemble at most 1.5 x one member's time ({t / t1:.2f} x)", t / t1 <= 1.5)
        rep.save()


# ----------------------------------------------------------------------------------------------- multislice

def section_forward(rep: Report, args, dev: torch.device) -> None:
    dtype = torch.complex64
    for size in args.windows:
        for batch in args.batches:
            case = make_case(size, batch, 2, dev, dtype)
            chunk = chunk_for(size, dtype, dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            time_step(optimised_step, case, dev, 2, chunk=chunk)
            cal = calibrate(dev, args.cal_seconds)
            t = statistics.median(time_step(optimised_step, case, dev, args.forward_repeats, chunk=chunk))
            row = {"device": device_name(dev), "window": size, "batch": batch, "pos_per_s": round(batch / t, 1),
                   "ms_per_batch": round(1e3 * t, 2), "peak_MiB": peak_mib(dev), "matmul_GFLOPs": cal}
            if (dev.type == "cuda" or args.smoke) and batch == args.batches[0] and args.cpu_threads:
                cpu = torch.device("cpu")
                with cpu_threads(args.cpu_threads):
                    ccase = make_case(size, batch, 2, cpu, dtype)
                    cchunk = chunk_for(size, dtype, cpu)
                    time_step(optimised_step, ccase, cpu, 1, chunk=cchunk)
                    ccal = calibrate(cpu, args.cal_seconds)
                    tc = statistics.median(time_step(optimised_step, ccase, cpu, 2, chunk=cchunk))
                row.update({"cpu_threads": args.cpu_threads, "cpu_pos_per_s": round(batch / tc, 1),
                            "cpu_matmul_GFLOPs": ccal, "gpu_vs_cpu": round(tc / t, 1)})
            rep.add("forward", row)
            del case
        rep.save()


def synthetic_dataset(window: int, n_side: int, step: int, seed: int = 0):
    """A two-slice dataset of random intensities (the throughput does not depend on the values)."""
    from ptycho_ddip.io import DiffractionDataset
    from ptycho_ddip.multislice.physics import depth_of_field_m, wavelength_m

    rng = np.random.default_rng(seed)
    lam = wavelength_m(12000.0)
    extent = window + step * (n_side - 1) + 2
    yy, xx = np.mgrid[:n_side, :n_side]
    positions = np.stack([yy.ravel() * step + 0.5, xx.ravel() * step + 0.25], axis=1).astype(np.float64)
    g = np.mgrid[:window, :window] - window / 2
    probe = np.exp(-(g[0] ** 2 + g[1] ** 2) / (window / 6) ** 2).astype(np.complex64) * 100.0
    data = rng.poisson(50.0, (positions.shape[0], window, window)).astype(np.float32)
    return DiffractionDataset(intensities=data, energy_ev=12000.0, pixel_size_m=10e-9, positions_px=positions,
                              slice_pos_m=np.array([0.0, 3.5 * depth_of_field_m(10e-9, lam)]), probe=probe,
                              object_shape=(extent, extent))


def section_reconstruct(rep: Report, args, dev: torch.device) -> None:
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, Reconstructor

    for window in args.windows:
        n_side, step = args.recon_grid.get(window, (16, max(window // 8, 1)))
        ds = synthetic_dataset(window, n_side, step)
        n = ds.n_positions
        for batch in args.batches:
            opts = ReconstructionOptions(epochs=100, batch_size=batch, device=str(dev), init="constant")
            rec = Reconstructor(ds, opts)
            rec.run_epoch()
            cal = calibrate(dev, args.cal_seconds)
            sync(dev)
            t = time.perf_counter()
            for _ in range(args.recon_epochs):
                rec.run_epoch()
            sync(dev)
            dt = (time.perf_counter() - t) / args.recon_epochs
            row = {"device": device_name(dev), "window": window, "positions": n, "batch": batch,
                   "chunk": rec.chunk_size, "pos_per_s": round(n / dt, 1), "s_per_epoch": round(dt, 4),
                   "matmul_GFLOPs": cal}
            del rec
            if (dev.type == "cuda" or args.smoke) and batch == args.batches[0] and args.cpu_threads:
                with cpu_threads(args.cpu_threads):
                    crec = Reconstructor(ds, ReconstructionOptions(epochs=100, batch_size=batch, device="cpu",
                                                                   init="constant"))
                    ccal = calibrate(torch.device("cpu"), args.cal_seconds)
                    t = time.perf_counter()
                    crec.run_epoch()
                    tc = time.perf_counter() - t
                row.update({"cpu_threads": args.cpu_threads, "cpu_pos_per_s": round(n / tc, 1),
                            "cpu_matmul_GFLOPs": ccal, "gpu_vs_cpu": round(tc / dt, 1)})
                rep.goal(f"reconstructor at {window}x{window} windows, batch {batch}: at least 50 x the "
                         f"{args.cpu_threads}-thread CPU figure ({tc / dt:.1f} x, CPU of the GPU host)", tc / dt >= 50)
                del crec
            rep.add("reconstruct", row)
        rep.save()


# ----------------------------------------------------------------------------------------------- main

def parse(argv=None):
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    words = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".", help="folder for bench_cuda.json and bench_cuda.md")
    ap.add_argument("--device", default=None, help="default: cuda when available (cpu with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: the same code paths, for checking")
    ap.add_argument("--sections", type=words, default=list(SECTIONS))
    ap.add_argument("--sizes", type=ints, default=[272, 448], help="DDIP image sizes; the first one for long/ensemble")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per timed block (epoch section)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    ap.add_argument("--no-variants", action="store_true", help="skip the TF32/benchmark/NCHW/CUDA-graph variants")
    ap.add_argument("--quick-mixing-iters", type=int, default=20,
                    help="iterations of the mixing estimate used only to time epochs")
    ap.add_argument("--long-epochs", type=int, default=2000)
    ap.add_argument("--long-epochs-learn", type=int, default=1000, help="--long-epochs of the learnable mixing")
    ap.add_argument("--long-mixings", type=words, default=["estimate", "learn"])
    ap.add_argument("--ensembles", type=ints, default=[1, 4, 20])
    ap.add_argument("--ensemble-mixings", type=words, default=["estimate", "learn"])
    ap.add_argument("--ensemble-epochs", type=int, default=10)
    ap.add_argument("--windows", type=ints, default=[64, 256], help="probe windows of forward/reconstruct")
    ap.add_argument("--batches", type=ints, default=[16, 256],
                    help="positions per minibatch; the first (the reconstructor's default) gets the CPU reference")
    ap.add_argument("--forward-repeats", type=int, default=5)
    ap.add_argument("--recon-epochs", type=int, default=2)
    ap.add_argument("--cpu-threads", type=int, default=2, help="threads of the in-run CPU reference (0 = none)")
    ap.add_argument("--cal-seconds", type=float, default=0.2, help="length of each matmul calibration")
    args = ap.parse_args(argv)
    args.recon_grid = {64: (48, 8), 256: (16, 32)}  # (positions per side, step px) per window
    if args.smoke:
        args.device = args.device or "cpu"
        args.sizes, args.epochs, args.warmup, args.rounds = [48, 64], 2, 1, 2
        args.quick_mixing_iters, args.long_epochs, args.ensembles, args.ensemble_epochs = 5, 30, [1, 2, 4], 2
        args.long_epochs_learn = 20
        args.windows, args.batches, args.forward_repeats, args.recon_epochs = [16, 32], [8, 16], 2, 1
        args.recon_grid = {16: (6, 4), 32: (4, 8)}
        args.cal_seconds = 0.05
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bad = [s for s in args.sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown sections {bad}; choose from {SECTIONS}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    from ptycho_ddip.runtime import configure_threads

    configure_threads(None)
    meta = {"device_name": device_name(dev), "device": str(dev), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "host_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join([os.path.basename(__file__)]
                                                                              + (argv or sys.argv[1:])),
            "smoke": args.smoke}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        meta.update({"gpu_memory_GiB": round(p.total_memory / 2**30, 1), "sm_count": p.multi_processor_count,
                     "capability": f"{p.major}.{p.minor}"})
    rep = Report(args.out, meta)
    print(f"# bench_cuda on {meta['device_name']} ({dev}), torch {meta['torch']}, CUDA {meta['cuda']}, "
          f"cuDNN TF32 {meta['cudnn_tf32']}", flush=True)
    rep.save()
    funcs = {"epoch": section_epoch, "long": section_long, "ensemble": section_ensemble, "forward": section_forward,
             "reconstruct": section_reconstruct, "graph": section_graph}
    for name in args.sections:
        t = time.perf_counter()
        print(f"\n=== section {name}", flush=True)
        try:
            funcs[name](rep, args, dev)
        except Exception as exc:  # noqa: BLE001 - one failing section must not cost the others
            rep.error(name, exc)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        print(f"=== section {name}: {time.perf_counter() - t:.1f} s", flush=True)
        rep.save()
    print("\n" + rep.markdown(), flush=True)
    return 1 if rep.data["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
