"""Apply the product's slice-2 selection (``select_iterates``, each ``select_estimate``) to saved DDIP trajectories.

    python demos/trajectory_signals.py --out out/sig --variants anchor --filters kernel --seed 9 --every 25
    python demos/select_rules.py --out out/sig --seeds 0,1,2,9 > select_rank.md

Reads ``OUT/<phantom>_<blend>_kernel_<variant>[_s<seed>].npz`` written by ``demos/trajectory_signals.py``, keeps the
snapshots every ``--every`` epochs from ``--from`` on (the product's ``select_every`` / ``select_from``: 50 and 100;
trajectories saved every 25 epochs are subsampled), and returns slice 2 as ``separate(..., select="crosstalk")``
would, with the guard 0.9, for each estimate. It prints a per-run Markdown table (slice 2's ghost-to-signal ratio
against the truth, the issue's bound, pass/fail) and a per-blend summary. Used for docs/separation_stability.md
section 12 (``docs/validation/select_rank.md``).
"""
from __future__ import annotations

import argparse
import glob
import os
import re

import numpy as np

from ptycho_ddip.separation.metrics import correlation, ghost_to_signal
from ptycho_ddip.separation.select import SELECT_ESTIMATES, select_iterates

RULES = ("final",) + tuple(reversed(SELECT_ESTIMATES))  # final, plain, partial, rank


def evaluate(path: str, every: int = 50, start: int = 100, guard: float = 0.9) -> dict:
    """Slice 2's ghost-to-signal ratio, correlation with the truth and pass/fail for the final iterate and for the
    iterate each estimate selects, plus the issue's bound (truth used only to score, never to select)."""
    d = np.load(path)
    keep = d["epoch"] % every == 0
    ys, ep, truth, ghosts, x = d["y"][keep], d["epoch"][keep], d["truth"], d["ghosts"], d["inputs"]
    matched = []
    for y in ys:  # assign the network outputs to the input slices (as ``match_inputs`` does)
        c = np.array([[correlation(y[k], x[i]) for k in range(2)] for i in range(2)])
        matched.append(y if c[0, 0] + c[1, 1] >= c[0, 1] + c[1, 0] else y[::-1])
    gsr = np.array([ghost_to_signal(y[1], truth[1], ghosts[1]) for y in matched])
    g_in = ghost_to_signal(x[1], truth[1], ghosts[1])
    bound = min(0.2 * g_in, max(1.5 * gsr.min(), 0.05 * g_in))
    kept = [(int(e), y[1:2]) for e, y in zip(ep[:-1], matched[:-1]) if e >= start]
    out = {"bound": bound, "any": bool((gsr <= bound).any())}
    for rule in RULES:
        if rule == "final":
            img, epoch = matched[-1][1], int(ep[-1])
        else:
            imgs, epochs = select_iterates(kept, matched[-1], x, ("lowpass", "highpass"), int(ep[-1]), guard, rule)
            img, epoch = imgs[1], int(epochs[1])
        g = ghost_to_signal(img, truth[1], ghosts[1])
        out[rule] = {"gsr": g, "corr": correlation(img, truth[1]), "epoch": epoch, "pass": bool(g <= bound)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder of saved trajectories")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variant", default="anchor")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--from", dest="start", type=int, default=100)
    args = ap.parse_args()
    lines = ["| seed | blend | slice 2 GSR: " + " / ".join(RULES) + " (epoch) | bound | passes: " + " / ".join(RULES)
             + " |", "|---|---|---|---|---|"]
    per, total, corr, n_any, n = {}, dict.fromkeys(RULES, 0), {r: [] for r in RULES}, 0, 0
    for seed in (int(s) for s in args.seeds.split(",")):
        suffix = f"_s{seed}" if seed else ""
        for path in sorted(glob.glob(os.path.join(args.out, f"*_kernel_{args.variant}{suffix}.npz"))):
            blend = re.sub(r"_kernel_.*", "", os.path.basename(path))
            r = evaluate(path, args.every, args.start)
            n, n_any = n + 1, n_any + r["any"]
            per.setdefault(blend, dict.fromkeys(RULES, 0))
            for rule in RULES:
                total[rule] += r[rule]["pass"]
                per[blend][rule] += r[rule]["pass"]
                corr[rule].append(r[rule]["corr"])
            lines.append(f"| {seed} | {blend} | " + " / ".join(f"{r[k]['gsr']:.4f}" for k in RULES)
                         + f" ({r[RULES[-1]]['epoch']}) | {r['bound']:.4f} | "
                         + " / ".join("yes" if r[k]["pass"] else "no" for k in RULES) + " |")
    lines.append(f"| | **total of {n}** | mean corr2 " + " / ".join(f"{np.mean(corr[k]):.3f}" for k in RULES)
                 + " | | **" + " / ".join(str(total[k]) for k in RULES) + "** |")
    lines += ["", "| blend | seeds passing: " + " | ".join(RULES) + " |", "|---|" + "---|" * len(RULES)]
    lines += [f"| {b} | " + " | ".join(str(v[k]) for k in RULES) + " |" for b, v in per.items()]
    lines += [f"| **total of {n}** | " + " | ".join(f"**{total[k]}**" for k in RULES) + " |", "",
              f"Runs with an iterate under the bound anywhere on the trajectory: {n_any} of {n}."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
