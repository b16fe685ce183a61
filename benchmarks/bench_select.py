"""Cost of ``select="crosstalk"`` against the fit it belongs to: one kept copy (every ``select_every`` epochs) and
the end-of-fit selection (with each ``select_estimate``), as fractions of a DDIP epoch measured in the same process.

    python benchmarks/bench_select.py --sizes 96,448 --epochs 2000

The kept images are the final image plus noise (the selection's work does not depend on their content); the epoch
time is the median of ``--steps`` fast-path steps after 3 warm-up steps, one thread. A matmul GFLOP/s calibration is
printed beside each line.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bench_separation import matmul_gflops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="96,448")
    ap.add_argument("--epochs", type=int, default=2000, help="fit length: sets the number of kept images")
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.select import SELECT_ESTIMATES, select_iterates
    from ptycho_ddip.separation.engine import snapshot
    from ptycho_ddip.separation.fit import Fit

    torch.set_num_threads(1)
    opts = SeparationOptions(epochs=args.epochs, device="cpu", threads=1, method="paper", select="crosstalk",
                             learned={"exclusion_balance": True, "exclusion_input": 1.0})  # where select applies
    every, start = opts.learned.select_every, opts.learned.select_from
    n_kept = len(range(start, args.epochs, every))
    for n in (int(s) for s in args.sizes.split(",")):
        b = blend(make_phantom("au-nio", (n, n), seed=0).normalized())
        fit = Fit(b.inputs, opts, [0], torch.device("cpu"))
        for e in range(3):
            out, _ = fit.step(e)
        steps = []
        for e in range(3, 3 + args.steps):
            t0 = time.perf_counter()
            out, _ = fit.step(e)
            steps.append(time.perf_counter() - t0)
        t_epoch = statistics.median(steps)
        t0 = time.perf_counter()
        for _ in range(5):
            snapshot(0, out["y"][0], b.inputs)
        t_copy = (time.perf_counter() - t0) / 5
        rng = np.random.default_rng(0)
        final = 0.7 * b.truth + 0.3 * b.inputs
        kept = [(start + every * k,
                 (final[1] + 0.01 * rng.standard_normal((n, n)))[None].astype(np.float32)) for k in range(n_kept)]
        per_epoch = (t_copy / every) / t_epoch
        for est in SELECT_ESTIMATES:  # the default first
            t0 = time.perf_counter()
            select_iterates(kept, final, b.inputs, ("lowpass", "highpass"), args.epochs, estimate=est)
            t_sel = time.perf_counter() - t0
            whole = (n_kept * t_copy + t_sel) / (args.epochs * t_epoch)
            print(f"{n}x{n} ({est}): epoch {1e3 * t_epoch:.1f} ms | kept copy {1e3 * t_copy:.2f} ms every "
                  f"{every} epochs = {100 * per_epoch:.3f} % per epoch | selection over {n_kept} kept "
                  f"images {1e3 * t_sel:.0f} ms | all of it {100 * whole:.3f} % of a {args.epochs}-epoch fit | "
                  f"matmul {matmul_gflops():.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
