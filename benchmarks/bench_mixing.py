"""Cost of the estimated mixing: the one-off estimate, and one epoch of the fit with it against the learnable mixing.

    python benchmarks/bench_mixing.py                       # 96, 272 and 448 px, all usable CPU threads
    python benchmarks/bench_mixing.py --sizes 96 --threads 1 --repeats 3

For each size, in one process and interleaved over ``--repeats`` rounds (medians reported, a matmul GFLOP/s
calibration measured in every round: these machines can slow 10-35x for minutes with no trace inside):

* the time of ``estimate_mixing`` (default options: 800 Adam iterations, float64, CPU);
* seconds per epoch of the fit with the estimated mixing (``method="estimate"``: image DIPs only, the mixing as
  FFT filters) and with the learnable mixing (``method="paper"``, kernel filters: image DIPs, weight DIP, filters);
* the estimate expressed in epochs of the estimated-mixing fit, and the cost of a 2000-epoch separation with each
  mixing (estimate included).
"""
from __future__ import annotations

import argparse
import statistics
import time


def matmul_gflops(n: int = 1024, reps: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="96,272,448")
    ap.add_argument("--epochs", type=int, default=10, help="epochs timed per round and mixing")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import torch

    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.runtime import usable_cpus
    from ptycho_ddip.separation.mixing import estimate_mixing
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import Fit, normalize_jointly

    threads = args.threads or usable_cpus()
    torch.set_num_threads(threads)
    dev = torch.device("cpu")
    print(f"estimated mixing: torch {torch.__version__}, {threads} CPU threads, {args.repeats} interleaved rounds, "
          "medians")
    print(f"{'size':>5} {'estimate s':>10} {'est. s/ep':>9} {'learn s/ep':>10} {'ratio':>6} {'estimate in ep':>14} "
          f"{'2000 ep est.':>12} {'2000 ep learn':>13} {'matmul GF/s':>11}")
    for size in (int(s) for s in args.sizes.split(",")):
        b = blend(make_phantom("au-nio", (size, size), seed=0).normalized())
        target = normalize_jointly(b.inputs)[0]
        mix = estimate_mixing(target, iters=5)  # warm-up of the FFT plans
        methods = {"estimate": {"method": "estimate"},
                   "learn": {"method": "paper", "learned": {"exclusion_balance": True, "exclusion_input": 1.0}}}
        fits = {m: Fit(target, SeparationOptions(device="cpu", **o), [0], dev, mix if m == "estimate" else None)
                for m, o in methods.items()}
        for f in fits.values():
            for e in range(2):
                f.step(e)
        est, per = [], {m: [] for m in fits}
        gfs = []
        for _ in range(args.repeats):
            gfs.append(matmul_gflops())
            t = time.perf_counter()
            estimate_mixing(target)
            est.append(time.perf_counter() - t)
            for m, f in fits.items():
                t = time.perf_counter()
                for e in range(args.epochs):
                    f.step(e)
                per[m].append((time.perf_counter() - t) / args.epochs)
        te, pe, pl = statistics.median(est), statistics.median(per["estimate"]), statistics.median(per["learn"])
        print(f"{size:>5} {te:10.2f} {pe:9.4f} {pl:10.4f} {pe / pl:6.3f} {te / pe:14.0f} {te + 2000 * pe:10.0f} s "
              f"{2000 * pl:11.0f} s {statistics.median(gfs):11.1f}", flush=True)


if __name__ == "__main__":
    main()
