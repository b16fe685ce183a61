"""Does pass 1 reach the noise floor? Data loss of a plain reconstruction against the true object's, per setting, on
the datasets of the crosstalk benchmark's matrix.

Usage::

    python benchmarks/pass1_convergence.py --small                          # the defaults on the 12 small cases
    python benchmarks/pass1_convergence.py --small --settings "epochs=50,lr_schedule=constant" "epochs=100"

Each setting is a comma-separated list of ReconstructionOptions overrides (``key=value``, values parsed as JSON when
possible); an empty string is the defaults. Prints, per case and setting, the final data loss over the true object's
(evaluated once at the final object, :func:`ptycho_ddip.pipeline.data_loss`), the epochs run and the seconds, then
the worst ratio per setting. Datasets are simulated into ``OUT/<case>/data.h5`` (shared with
``crosstalk_matrix.py``) when missing. Never part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crosstalk_matrix import full_matrix, small_matrix  # noqa: E402


def parse_setting(text: str) -> dict:
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", default="crosstalk_runs")
    ap.add_argument("--cases", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settings", nargs="*", default=[""])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    from ptycho_ddip.io import read_dataset, write_dataset
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, reconstruct
    from ptycho_ddip.multislice.simulate import simulate
    from ptycho_ddip.pipeline import data_loss

    torch.set_num_threads(args.threads)
    cases = small_matrix(args.size) if args.small else full_matrix(args.size)
    if args.cases:
        cases = [c for c in cases if any(k in c.name for k in args.cases.split(","))]
    settings = [parse_setting(s) for s in args.settings]
    results = []
    worst = [0.0] * len(settings)
    for case in cases:
        path = os.path.join(args.out, case.name, "data.h5")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_dataset(path, simulate(case.simulation()), overwrite=True)
        ds = read_dataset(path)
        truth = data_loss(ds, ReconstructionOptions(device="cpu"), ds.ground_truth_object)
        for s, setting in enumerate(settings):
            opts = ReconstructionOptions.from_dict({"device": "cpu", **setting})
            t0 = time.perf_counter()
            res = reconstruct(ds, opts, progress=False)
            seconds = time.perf_counter() - t0
            ratio = data_loss(ds, opts, res.object) / truth
            worst[s] = max(worst[s], ratio)
            results.append({"case": case.name, "setting": args.settings[s], "ratio": ratio, "epochs": int(res.loss.size),
                            "seconds": seconds, "truth_loss": truth, "loss": res.loss.tolist()})
            print(f"{case.name:<40} {args.settings[s] or 'defaults':<50} loss/truth {ratio:7.3f}  "
                  f"{res.loss.size:4d} epochs {seconds:6.1f} s", flush=True)
    for s, w in zip(args.settings, worst):
        print(f"worst ratio {w:.3f}: {s or 'defaults'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
