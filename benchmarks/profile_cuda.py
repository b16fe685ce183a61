"""Where a default DDIP epoch's time goes on a GPU: top operations, kernel launches, GPU busy time and host syncs.

    python benchmarks/profile_cuda.py --out results/               # 272 x 272, both mixings (about 30 s on a GPU)
    python benchmarks/profile_cuda.py --smoke --out /tmp/p         # CPU, tiny: checks the code paths

For each of ``--mixings`` (default: the estimated mixing, then the paper's learnable mixing):

1. ``Fit.step`` (forward, losses, backward, Adam) under ``torch.profiler`` for ``--epochs`` epochs after a warm-up:
   wall time per epoch, GPU busy time per epoch (the sum of the kernels' durations: far below the wall time means
   the epoch is bound by launches and Python, which CUDA graphs remove), kernels launched per epoch, host-device
   syncs per epoch, the phases of the fitting code (``record_function`` labels), the operation kinds of
   ``profile_separation.py``, and the top operations by device time and by call count.
2. The real fitting loop (``fit_members``: per-epoch bookkeeping, the host reads every ``log_every`` epochs, the
   selection rule) run twice, for N and 2N epochs: the difference of the sync-type events counts those the loop
   adds per epoch (setup and wrap-up cancel out).

A chrome trace of 3 default epochs is written to ``profile_trace.json.gz`` (open in chrome://tracing or Perfetto).
The text report goes to ``profile_cuda.txt`` in ``--out`` and to stdout.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from bench_forward import matmul_gflops  # noqa: E402
from profile_separation import KINDS, PHASES  # noqa: E402

#: profiler event names that block the host until the device is done (or copy device -> host)
SYNC_EVENTS = ("aten::_local_scalar_dense", "aten::item", "cudaStreamSynchronize", "cudaDeviceSynchronize",
               "cudaEventSynchronize", "cudaMemcpy", "cudaMemcpyAsync")
LAUNCH_EVENTS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


class Out:
    def __init__(self, path: str):
        self.fh = open(path, "w")

    def __call__(self, *lines) -> None:
        for line in lines:
            print(line, flush=True)
            self.fh.write(str(line) + "\n")
        self.fh.flush()


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _dev_self(ev) -> float:
    return float(getattr(ev, "self_device_time_total", getattr(ev, "self_cuda_time_total", 0.0)))


def _dev_total(ev) -> float:
    return float(getattr(ev, "device_time_total", getattr(ev, "cuda_time_total", 0.0)))


def counts(prof) -> dict:
    """Calls of the sync and launch events, and the number and total time (us) of device kernels."""
    out = {name: 0 for name in SYNC_EVENTS + LAUNCH_EVENTS}
    for ev in prof.key_averages():
        if ev.key in out:
            out[ev.key] += ev.count
    kernels, busy = 0, 0.0
    for e in prof.events():
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:
            kernels += 1
            busy += float(getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0)) or 0.0)
    out["device_kernels"], out["device_busy_us"] = kernels, busy
    return out


def profile_steps(fit, epochs: int, dev, out: Out, label: str, top: int, trace: str | None = None) -> None:
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    for e in range(5):
        fit.step(e)
    sync(dev)
    t = time.perf_counter()
    for e in range(5, 5 + epochs):
        fit.step(e)
    sync(dev)
    wall_plain = (time.perf_counter() - t) / epochs
    t = time.perf_counter()
    with profile(activities=acts, record_shapes=False) as prof:
        for e in range(5 + epochs, 5 + 2 * epochs):
            fit.step(e)
        sync(dev)
    wall = (time.perf_counter() - t) / epochs
    c = counts(prof)
    launches = sum(c[k] for k in LAUNCH_EVENTS)
    out(f"\n## {label}: Fit.step, {epochs} epochs profiled",
        f"wall s/epoch: {wall_plain:.5f} without the profiler, {wall:.5f} with it",
        f"GPU busy per epoch (sum of kernel durations): {c['device_busy_us'] / epochs / 1e3:.3f} ms "
        f"= {100 * c['device_busy_us'] / epochs / 1e6 / wall_plain:.0f} % of the unprofiled wall time",
        f"device kernels per epoch: {c['device_kernels'] / epochs:.0f}; kernel launch calls per epoch: "
        f"{launches / epochs:.0f}",
        "host syncs / copies per epoch: " + ", ".join(f"{k} {c[k] / epochs:.2f}" for k in SYNC_EVENTS if c[k]))
    events = prof.key_averages()
    cuda = dev.type == "cuda"
    out(f"{'phase (record_function)':<28} {'ms/epoch':>9}")
    for ev in events:
        if ev.key in PHASES:
            v = (_dev_total(ev) if cuda else ev.cpu_time_total) / epochs / 1e3
            out(f"{ev.key:<28} {v:9.3f}")
    kinds = {k: 0.0 for k, _ in KINDS}
    kinds["other"] = 0.0
    for ev in events:
        if not ev.key.startswith("aten::"):
            continue
        v = (_dev_self(ev) if cuda else ev.self_cpu_time_total) / epochs / 1e3
        name = ev.key[6:].lower()
        for k, keys in KINDS:
            if any(s in name for s in keys):
                kinds[k] += v
                break
        else:
            kinds["other"] += v
    out(f"{'operation kind (self ' + ('device' if cuda else 'CPU') + ' time)':<40} {'ms/epoch':>9}")
    for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
        out(f"{k:<40} {v:9.3f}")
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    try:
        table = events.table(sort_by=sort, row_limit=top, max_name_column_width=60)
    except (KeyError, AttributeError, ValueError):
        table = events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=top,
                             max_name_column_width=60)
    out(f"\ntop {top} operations by self {'device' if cuda else 'CPU'} time ({epochs} epochs):", table)
    by_count = sorted(events, key=lambda ev: -ev.count)[:top]
    out(f"top {top} events by calls ({epochs} epochs): "
        + "; ".join(f"{ev.key} {ev.count}" for ev in by_count))
    if trace:
        with profile(activities=acts) as p3:
            for e in range(3):
                fit.step(100 + e)
            sync(dev)
        raw = trace[:-3]
        p3.export_chrome_trace(raw)
        with open(raw, "rb") as src, gzip.open(trace, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.remove(raw)
        out(f"chrome trace of 3 epochs: {trace} ({os.path.getsize(trace) / 2**20:.1f} MiB)")


def method_options(kind: str) -> dict:
    """Options of mixing ``kind``: "estimate" (the default method) or "learn" (the learnable mixing with the balanced,
    input-anchored exclusion, the old default of mixing="learn")."""
    if kind == "estimate":
        return {"method": "estimate"}
    return {"method": "paper", "learned": {"exclusion_balance": True, "exclusion_input": 1.0}}


def loop_syncs(x, kind: str, mix, dev, epochs: int, out: Out) -> None:
    """Sync-type events of the real loop per epoch: fit_members for N and 2N epochs, the difference / N."""
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import fit_members

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    res = {}
    for n in (epochs, 2 * epochs):
        opts = SeparationOptions(epochs=n, seed=0, device=str(dev), **method_options(kind))
        fit_members(x, opts, progress=False, mixing=mix)  # warm (allocator, cuDNN, FFT plans)
        sync(dev)
        t = time.perf_counter()
        with profile(activities=acts) as prof:
            fit_members(x, opts, progress=False, mixing=mix)
            sync(dev)
        res[n] = (counts(prof), time.perf_counter() - t)
    (c1, t1), (c2, t2) = res[epochs], res[2 * epochs]
    per = {k: (c2[k] - c1[k]) / epochs for k in SYNC_EVENTS + LAUNCH_EVENTS if c2[k] or c1[k]}
    fixed = {k: c1[k] - epochs * per.get(k, 0.0) for k in per}
    out(f"\n## {kind}: the fitting loop (fit_members, log_every {SeparationOptions().experimental.log_every}), "
        f"{epochs} and "
        f"{2 * epochs} epochs under the profiler ({t1:.2f} s, {t2:.2f} s)",
        "per epoch: " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()),
        "setup + wrap-up (once): " + ", ".join(f"{k} {v:.0f}" for k, v in fixed.items()),
        f"device kernels per epoch in the loop: {(c2['device_kernels'] - c1['device_kernels']) / epochs:.0f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".")
    ap.add_argument("--device", default=None)
    ap.add_argument("--size", type=int, default=272)
    ap.add_argument("--epochs", type=int, default=10, help="epochs profiled per Fit.step profile")
    ap.add_argument("--loop-epochs", type=int, default=20, help="N of the loop profile (N and 2N epochs)")
    ap.add_argument("--mixings", default="estimate,learn")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--no-trace", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.device = args.device or "cpu"
        args.size, args.epochs, args.loop_epochs, args.top = 48, 2, 2, 10
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.runtime import configure_threads
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import Fit, estimate_target_mixing, normalize_jointly, validate_images

    configure_threads(None)
    os.makedirs(args.out, exist_ok=True)
    out = Out(os.path.join(args.out, "profile_cuda.txt"))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    out(f"# DDIP epoch profile, {args.size}x{args.size}, {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"cuDNN TF32 {torch.backends.cudnn.allow_tf32}, matmul {matmul_gflops(dev, 0.2):.0f} GFLOP/s")
    b = blend(make_phantom("au-nio", (args.size, args.size), seed=0).normalized())
    x = validate_images(b.inputs)
    target = normalize_jointly(x)[0]
    mix = estimate_target_mixing(target, SeparationOptions(estimate={"iters": 20}))
    status = 0
    for i, kind in enumerate(m.strip() for m in args.mixings.split(",") if m.strip()):
        try:
            fit = Fit(target, SeparationOptions(device=str(dev), **method_options(kind)), [0], dev,
                      mix if kind == "estimate" else None)
            trace = None if args.no_trace or i > 0 else os.path.join(args.out, "profile_trace.json.gz")
            profile_steps(fit, args.epochs, dev, out, f"mixing={kind}", args.top, trace)
            del fit
            loop_syncs(x, kind, mix if kind == "estimate" else None, dev, args.loop_epochs, out)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next mixing
            import traceback

            out(f"ERROR profiling mixing={kind}: {exc!r}")
            traceback.print_exc()
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
