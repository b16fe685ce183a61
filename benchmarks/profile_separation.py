"""Where a DDIP epoch's time goes: a profile of the plain and the optimised paths, by phase and by operation kind.

    python benchmarks/profile_separation.py --size 272 --filters kernel --threads 2
    python benchmarks/profile_separation.py --size 272 --device cuda     # on a GPU

Phases come from ``record_function`` labels in the fitting code (image DIPs, weight DIP, filters, losses, backward,
Adam); the forward phases are those of the fast path (the plain path's forward shows as one block). Operation kinds
group the profiler's self times by ATen operator (convolution forward/backward, BatchNorm, up-sampling, padding,
activations, other element-wise work); "Python and dispatch overhead" is the epoch's wall time minus the summed self
times of all operators. A matmul GFLOP/s calibration is printed beside the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

KINDS = [  # (label, substrings of ATen op names), first match wins
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("mkldnn_convolution", "cudnn_convolution", "_convolution", "conv2d", "thnn_conv")),
    ("BatchNorm", ("batch_norm",)),
    ("bilinear up-sampling", ("upsample",)),
    ("reflection padding", ("reflection_pad", "replication_pad")),
    ("LeakyReLU / sigmoid / tanh", ("leaky_relu", "sigmoid", "tanh")),
    ("exclusion pooling", ("avg_pool2d",)),
    ("Adam", ("adam", "_fused_adam", "addcdiv", "addcmul", "lerp", "sqrt")),
    ("copies / allocation", ("copy_", "empty", "cat", "clone", "contiguous", "_to_copy", "zero_", "fill_")),
]
PHASES = ["ddip.image_dips", "ddip.weight_dip", "ddip.filters", "ddip.losses", "ddip.backward", "ddip.adam"]


def profile(fit, epochs: int, device: str) -> tuple[dict, dict, float]:
    import torch
    from torch.profiler import ProfilerActivity, profile as tprofile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for e in range(3):
        fit.step(e)
    sync()
    t = time.perf_counter()
    with tprofile(activities=acts) as prof:
        for e in range(epochs):
            fit.step(e)
        sync()
    wall = (time.perf_counter() - t) / epochs
    events = prof.key_averages()
    cuda = device.startswith("cuda")
    phases = {}
    kinds = {label: 0.0 for label, _ in KINDS}
    kinds["other element-wise and reductions"] = 0.0
    total_self = 0.0
    for ev in events:
        if ev.key in PHASES:
            phases[ev.key] = (ev.device_time_total if cuda else ev.cpu_time_total) / epochs / 1e6
            continue
        if not ev.key.startswith("aten::") and not ev.key.startswith("Optimizer"):
            continue
        self_t = (ev.self_device_time_total if cuda else ev.self_cpu_time_total) / epochs / 1e6
        if ev.key.startswith("Optimizer"):
            kinds["Adam"] += self_t
            total_self += self_t
            continue
        total_self += self_t
        name = ev.key[6:].lower()
        for label, keys in KINDS:
            if any(k in name for k in keys):
                kinds[label] += self_t
                break
        else:
            kinds["other element-wise and reductions"] += self_t
    return phases, kinds, wall, total_self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=272)
    ap.add_argument("--filters", default="kernel,dip")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import torch

    from bench_separation import matmul_gflops
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.runtime import usable_cpus
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import Fit, normalize_jointly

    threads = args.threads or usable_cpus()
    torch.set_num_threads(threads)
    dev = torch.device(args.device)
    b = blend(make_phantom("au-nio", (args.size, args.size), seed=0).normalized())
    target = normalize_jointly(b.inputs)[0]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {threads} threads"
    print(f"DDIP epoch profile, {args.size}x{args.size}, {name}, torch {torch.__version__}, "
          f"matmul {matmul_gflops(args.device):.0f} GFLOP/s")
    for filters in args.filters.split(","):
        res = {}
        for label, fast in (("plain", False), ("fast", True)):
            opts = SeparationOptions(method="paper", device=args.device, experimental={"fast": fast},
                                     learned={"filters": filters, "exclusion_balance": True, "exclusion_input": 1.0})
            fit = Fit(target, opts, [0], dev)
            res[label] = profile(fit, args.epochs, args.device)
        print(f"\n{filters} filters: wall s/epoch plain {res['plain'][2]:.4f}, fast {res['fast'][2]:.4f} "
              f"(profiler on)")
        print(f"{'phase (ms/epoch, inclusive)':<36} {'plain':>9} {'fast':>9}")
        for ph in PHASES:
            p, f = res["plain"][0].get(ph), res["fast"][0].get(ph)
            fmt = lambda v: f"{v * 1e3:9.1f}" if v is not None else f"{'-':>9}"  # noqa: E731
            print(f"{ph:<36} {fmt(p)} {fmt(f)}")
        print(f"{'operation kind (ms/epoch, self)':<36} {'plain':>9} {'fast':>9} {'fast %':>7}")
        wall_f = res["fast"][2]
        rows = list(res["fast"][1])
        for k in rows:
            p, f = res["plain"][1][k], res["fast"][1][k]
            print(f"{k:<36} {p * 1e3:9.1f} {f * 1e3:9.1f} {100 * f / wall_f:6.1f}%")
        po = res["plain"][2] - res["plain"][3]
        fo = wall_f - res["fast"][3]
        print(f"{'Python and dispatch overhead':<36} {po * 1e3:9.1f} {fo * 1e3:9.1f} {100 * fo / wall_f:6.1f}%")


if __name__ == "__main__":
    main()
