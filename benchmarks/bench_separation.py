"""DDIP separation speed: seconds per epoch and peak memory, per image size, filter type and device.

    python benchmarks/bench_separation.py                         # 272 and 448, kernel and dip, all devices
    python benchmarks/bench_separation.py --sizes 272 --epochs 20 --threads 2
    python benchmarks/bench_separation.py --compare --sizes 272   # plain eager vs optimised, same process
    python benchmarks/bench_separation.py --ensembles 1,4,8,20 --sizes 272 --filters kernel

``--compare`` runs, in one process per (size, filters), the plain eager fp32 path (``fast=False``: separate
networks, default memory layout, reference losses, for-loop Adam) and the optimised path (``fast=True``: grouped
networks, channels-last, fused exclusion and Adam) on the same input, interleaved epoch blocks, and prints the ratio,
the achieved GFLOP/s (FLOPs of one epoch counted by ``torch.utils.flop_counter``) and the matmul GFLOP/s.
``--ensembles`` times the fast path with K members batched in one network: seconds per epoch per member.

Each configuration runs in a fresh subprocess (so peak memory is its own: VmHWM on CPU, max_memory_allocated on
CUDA) after ``--warmup`` epochs; configurations are interleaved over ``--repeats`` rounds and the median is reported,
with a matmul GFLOP/s calibration measured right before each figure (these machines can slow down 10-35x for
minutes with no trace inside, so compare figures only against the calibration beside them).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def matmul_gflops(device: str = "cpu", n: int = 1024, reps: int = 5) -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(cfg: dict) -> dict:
    """Time one configuration in this process; prints a JSON line."""
    import numpy as np
    import torch

    torch.set_num_threads(cfg["threads"])
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.losses import exclusion_all_pairs, mismatch, weight_regularizer
    from ptycho_ddip.separation.model import DDIPModel
    from ptycho_ddip.separation.separate import normalize_jointly

    dev = torch.device(cfg["device"])
    n = cfg["size"]
    b = blend(make_phantom("au-nio", (n, n), seed=0).normalized())
    target = torch.as_tensor(normalize_jointly(b.inputs)[0], dtype=torch.float32, device=dev)[:, None]
    model = DDIPModel(2, (n, n), filters=cfg["filters"], seed=0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch(k):
        out = model()
        loss = mismatch(out["synth"], target) + 0.5 * exclusion_all_pairs(out["y"], balance=cfg["balance"])
        if k < 100:
            loss = loss + weight_regularizer(out["alpha"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    for k in range(cfg["warmup"]):
        epoch(k)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    gf = matmul_gflops(cfg["device"])
    t = time.perf_counter()
    for k in range(cfg["epochs"]):
        epoch(k)
    sync()
    dt = (time.perf_counter() - t) / cfg["epochs"]
    mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _peak_rss_mb()
    return {**cfg, "s_per_epoch": dt, "peak_mb": mem, "matmul_gflops": gf, "torch": torch.__version__,
            "n_params": int(sum(p.numel() for p in model.parameters())), "ok": bool(np.isfinite(dt))}


def _options(cfg: dict, fast: bool, extra: dict):
    """The learnable mixing with the balanced, input-anchored exclusion (the old default of mixing="learn"), unless
    an option set says otherwise: "method=estimate", "learned.exclusion_input=0" (groups by dotted names)."""
    from ptycho_ddip.separation.options import SeparationOptions

    base = SeparationOptions(method="paper", device=cfg["device"], experimental={"fast": fast},
                             learned={"filters": cfg["filters"], "exclusion_balance": True, "exclusion_input": 1.0})
    changes: dict = {}
    for key, value in extra.items():
        group, _, name = key.rpartition(".")
        if group:
            changes.setdefault(group, {})[name] = value
        else:
            changes[key] = value
    return base.updated(**changes)


def _epoch_flops(fit) -> float:
    """FLOPs of one epoch (forward + backward) of a Fit, counted once by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        out = fit.model()
        from ptycho_ddip.separation.fit import member_losses

        mis, exc, reg = member_losses(fit.model, out, fit.target, fit.opts, 0, fit.pairs, fit.anchor)
        (mis + exc + reg).sum().backward()
    fit.optim.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def child_compare(cfg: dict) -> dict:
    """Plain vs fast (or K-member ensembles) in this process, interleaved blocks of epochs."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.separate import Fit, normalize_jointly

    dev = torch.device(cfg["device"])
    n = cfg["size"]
    b = blend(make_phantom("au-nio", (n, n), seed=0).normalized())
    target = normalize_jointly(b.inputs)[0]
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    variants = cfg["variants"]  # list of (label, fast, members[, extra options])
    fits = {}
    for label, fast, k, *extra in variants:
        fits[label] = Fit(target, _options(cfg, fast, extra[0] if extra else {}), list(range(k)), dev)
    flops = {label: _epoch_flops(f) for label, f in fits.items()}
    times: dict = {label: [] for label in fits}
    gfs = []
    for label, f in fits.items():
        for e in range(cfg["warmup"]):
            f.step(e)
    sync()
    for r in range(cfg["rounds"]):
        gfs.append(matmul_gflops(cfg["device"]))
        for label, f in fits.items():
            t = time.perf_counter()
            for e in range(cfg["epochs"]):
                f.step(e)
            sync()
            times[label].append((time.perf_counter() - t) / cfg["epochs"])
    mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _peak_rss_mb()
    return {**cfg, "s_per_epoch": {k: statistics.median(v) for k, v in times.items()}, "flops": flops,
            "matmul_gflops": statistics.median(gfs), "peak_mb": mem, "torch": torch.__version__}


def _run_child(kind: str, cfg: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--{kind}", json.dumps(cfg)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args, threads: int, devices: list) -> None:
    print(f"DDIP plain eager vs optimised: {threads} CPU threads; {args.epochs} epochs x {args.repeats} interleaved "
          f"rounds after {args.warmup} warm-up epochs; medians")
    print(f"{'device':>6} {'size':>5} {'filters':>7} {'plain s/ep':>10} {'fast s/ep':>10} {'speed-up':>8} "
          f"{'GFLOP/ep':>8} {'plain GF/s':>10} {'fast GF/s':>9} {'matmul GF/s':>11}")
    for d in devices:
        for s in args.sizes.split(","):
            for f in args.filters.split(","):
                cfg = {"device": d, "size": int(s), "filters": f, "epochs": args.epochs, "warmup": args.warmup,
                       "rounds": args.repeats, "threads": threads,
                       "variants": [("plain", False, 1), ("fast", True, 1)]}
                r = _run_child("child-compare", cfg)
                tp, tf = r["s_per_epoch"]["plain"], r["s_per_epoch"]["fast"]
                gf = r["flops"]["fast"] / 1e9
                print(f"{d:>6} {s:>5} {f:>7} {tp:10.4f} {tf:10.4f} {tp / tf:7.2f}x {gf:8.2f} "
                      f"{r['flops']['plain'] / 1e9 / tp:10.1f} {gf / tf:9.1f} {r['matmul_gflops']:11.1f}", flush=True)


def _option_value(text: str):
    """'1.0' -> 1.0, 'true' -> True, '25/7' -> (25, 7), else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "/" in text:
        return tuple(int(v) for v in text.split("/"))
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def option_sets(args, threads: int, devices: list) -> None:
    """Cost of option sets ("k=v,k=v;k=v") against the first set, interleaved in one process per (size, filters)."""
    sets = [s.strip() for s in args.option_sets.split(";")]
    variants = [(s or "defaults", True, 1, {k: _option_value(v) for k, v in
                                            (kv.split("=") for kv in s.split(",") if kv)}) for s in sets]
    print(f"DDIP option sets, fast path: {threads} CPU threads; {args.epochs} epochs x {args.repeats} interleaved "
          f"rounds after {args.warmup} warm-up epochs; medians; ratio against {variants[0][0]!r}")
    print(f"{'device':>6} {'size':>5} {'filters':>7} {'options':>28} {'s/ep':>8} {'ratio':>6} {'matmul GF/s':>11}")
    for d in devices:
        for s in args.sizes.split(","):
            for f in args.filters.split(","):
                cfg = {"device": d, "size": int(s), "filters": f, "epochs": args.epochs, "warmup": args.warmup,
                       "rounds": args.repeats, "threads": threads, "variants": variants}
                r = _run_child("child-compare", cfg)
                base = r["s_per_epoch"][variants[0][0]]
                for label, t in r["s_per_epoch"].items():
                    print(f"{d:>6} {s:>5} {f:>7} {label:>28} {t:8.4f} {t / base:6.3f} {r['matmul_gflops']:11.1f}",
                          flush=True)


def ensembles(args, threads: int, devices: list) -> None:
    ks = [int(k) for k in args.ensembles.split(",")]
    print(f"DDIP batched ensembles (fast path): {threads} CPU threads; seconds per epoch per member; one process "
          "per (size, filters, K) timing K members batched against K = 1 in interleaved rounds")
    print(f"{'device':>6} {'size':>5} {'filters':>7} {'K':>3} {'s/epoch':>9} {'s/ep/member':>11} {'vs K=1':>7} "
          f"{'peak MB':>8} {'matmul GF/s':>11}")
    for d in devices:
        for s in args.sizes.split(","):
            for f in args.filters.split(","):
                base = None
                for k in ks:
                    variants = [("K1", True, 1)] + ([(f"K{k}", True, k)] if k != 1 else [])
                    cfg = {"device": d, "size": int(s), "filters": f, "epochs": args.epochs,
                           "warmup": args.warmup, "rounds": args.repeats, "threads": threads, "variants": variants}
                    r = _run_child("child-compare", cfg)
                    t1, tk = r["s_per_epoch"]["K1"], r["s_per_epoch"][f"K{k}"]
                    base = t1
                    print(f"{d:>6} {s:>5} {f:>7} {k:>3} {tk:9.4f} {tk / k:11.4f} {base / (tk / k):6.2f}x "
                          f"{r['peak_mb']:8.0f} {r['matmul_gflops']:11.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="272,448")
    ap.add_argument("--filters", default="kernel,dip")
    ap.add_argument("--devices", default="auto", help="auto = cpu plus cuda when present")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: usable CPUs)")
    ap.add_argument("--schedules", default="balanced",
                    help="balanced (default exclusion) and/or paper, e.g. balanced,paper to measure the remedy's cost")
    ap.add_argument("--compare", action="store_true", help="plain eager vs optimised in one process")
    ap.add_argument("--ensembles", default="", help="K values, e.g. 1,4,8,20: batched ensemble cost per member")
    ap.add_argument("--option-sets", default="",
                    help='e.g. "learned.exclusion_input=0;learned.exclusion_input=1": cost of SeparationOptions sets '
                         '(k=v,k=v, groups by dotted names; sets separated by ;) against the first, interleaved')
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-compare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.child_compare:
        print(json.dumps(child_compare(json.loads(args.child_compare))))
        return
    import torch

    from ptycho_ddip.runtime import usable_cpus

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" \
        else args.devices.split(",")
    threads = args.threads or usable_cpus()
    if args.compare or args.ensembles or args.option_sets:
        if args.option_sets:
            option_sets(args, threads, devices)
        if args.compare:
            compare(args, threads, devices)
        if args.ensembles:
            ensembles(args, threads, devices)
        return
    cfgs = [{"device": d, "size": int(s), "filters": f, "epochs": args.epochs, "warmup": args.warmup,
             "threads": threads, "schedule": sc, "balance": sc == "balanced"}
            for d in devices for s in args.sizes.split(",") for f in args.filters.split(",")
            for sc in args.schedules.split(",")]
    results: dict = {}
    for _ in range(args.repeats):  # interleave configurations across rounds
        for c in cfgs:
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(c)], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.setdefault((c["device"], c["size"], c["filters"], c["schedule"]), []).append(r)
    name = torch.cuda.get_device_name(0) if "cuda" in devices else ""
    print(f"DDIP separation benchmark: torch {torch.__version__}, {threads} CPU threads {name}")
    print(f"{'device':>6} {'size':>5} {'filters':>7} {'schedule':>9} {'s/epoch':>9} {'10k epochs':>11} "
          f"{'peak MB':>8} {'GFLOP/s mm':>11} {'params':>9}")
    for (d, s, f, sc), rs in results.items():
        t = statistics.median(r["s_per_epoch"] for r in rs)
        print(f"{d:>6} {s:>5} {f:>7} {sc:>9} {t:9.4f} {t * 1e4 / 60:9.1f} m {max(r['peak_mb'] for r in rs):8.0f} "
              f"{statistics.median(r['matmul_gflops'] for r in rs):11.1f} {rs[0]['n_params']:>9}")


if __name__ == "__main__":
    main()
