"""Which linear unmixing removes the crosstalk a multislice reconstruction makes? (issue 19 study)

    python studies/reconstruction_unmixing.py --cases CASES --out OUT [--iters 800] [--only NAME,...]

CASES holds the benchmark's case directories (``python benchmarks/crosstalk_matrix.py --small --out CASES``): each
with ``data.h5`` (simulated, with ground truth). For every case this reconstructs pass 1 with the package defaults
(one CPU thread; cached as ``OUT/<case>/pass1.npy``), takes the phase inside the scanned box, and unmixes it with:

* ``estimate``: the product's mixing estimate (``I_i = Y_i + sum_j H_ij Y_j``, slice 1 low-pass, others high-pass);
* ``estimate-inferred``: the same model with the ghost kinds chosen among all assignments by the final criterion;
* ``redistribute``: ``Y_i = I_i + E_i`` with ``sum_i E_i = 0`` (content moved between slices, the total phase kept),
  ``E_i = sum_j h_ij * I_j``, h_ij signed combinations of an all-pass term and Gaussian blurs of 0.5-6 px;
* ``redistribute-fresnel``: the same basis plus cos(chi), sin(chi) and their products with a 1 px blur, chi =
  pi lambda dz |k|^2 for every slice spacing dz of the case.

Each estimate minimises the scale-invariant exclusion of the unmixed slices (gain 4, as the product's estimate).
Scores against the truth (``benchmarks/crosstalk_matrix.score``: crosstalk = ghost-to-signal ratio, correlation)
and the truth-free shared-edge index (mean gradient correlation of the slice pairs,
``separation.metrics.gradient_correlation``). Writes ``OUT/unmixing.json`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def pass1_phase(cdir: str, odir: str) -> tuple:
    """(pass-1 phase, true phase, case meta) inside the scanned box; pass 1 with the package defaults, cached."""
    from ptycho_ddip.io import read_dataset
    from ptycho_ddip.multislice.physics import wavelength_m
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, reconstruct
    from ptycho_ddip.pipeline import scan_box, slice_part

    ds = read_dataset(os.path.join(cdir, "data.h5"))
    cache = os.path.join(odir, "pass1.npy")
    if os.path.exists(cache):
        obj = np.load(cache)
    else:
        res = reconstruct(ds, ReconstructionOptions(device="cpu", seed=0), progress=False)
        obj = res.object
        np.save(cache, obj)
    gt = ds.ground_truth_object
    box = scan_box(ds.positions_px, ds.probe, gt.shape[1:], 0.1)
    y0, y1, x0, x1 = box
    meta = {"wavelength_m": wavelength_m(ds.energy_ev), "pixel_size_m": ds.pixel_size_m,
            "slice_pos_m": list(map(float, ds.slice_pos_m)), "box": list(map(int, box))}
    return (slice_part(obj, "phase", box)[:, y0:y1, x0:x1], slice_part(gt, "phase", box)[:, y0:y1, x0:x1], meta)


def redistribution_basis(shape: tuple, meta: dict, fresnel: bool) -> torch.Tensor:
    """(B, 2H, W + 1) radial basis on the mirror-extended real-FFT grid: all-pass, Gaussian blurs, (Fresnel terms)."""
    from ptycho_ddip.separation.mixing import gaussian_basis, radial_frequency

    h, w = shape
    k = radial_frequency((2 * h, 2 * w))
    terms = [torch.ones(1, *k.shape, dtype=torch.float64), gaussian_basis(k, SIGMAS)]
    if fresnel:
        z = np.asarray(meta["slice_pos_m"])
        spacings = sorted({round(abs(a - b), 12) for a, b in itertools.combinations(z, 2)})
        g1 = gaussian_basis(k, (1.0,))[0]
        for dz in spacings:
            chi = math.pi * meta["wavelength_m"] * dz * (k / meta["pixel_size_m"]) ** 2
            terms += [torch.stack([torch.cos(chi), torch.sin(chi), torch.cos(chi) * g1, torch.sin(chi) * g1])]
    return torch.cat(terms)


def redistribute(images: np.ndarray, basis: torch.Tensor, iters: int, lr: float = 0.005) -> tuple:
    """Y_i = I_i + E_i, sum_i E_i = 0, E_i = sum_j h_ij * I_j (i < N); minimise the gain-4 exclusion of Y."""
    from ptycho_ddip.separation.losses import exclusion_pairs
    from ptycho_ddip.separation.mixing import _image, _spectrum

    x = torch.as_tensor(images, dtype=torch.float64)
    mu, sd = x.mean(), x.std()
    n, h, w = x.shape
    spec = _spectrum((x - mu) / sd)
    wt = torch.zeros(n - 1, n, basis.shape[0], dtype=torch.float64, requires_grad=True)
    first = [i for i in range(n) for j in range(i + 1, n)]
    second = [j for i in range(n) for j in range(i + 1, n)]

    def unmix(weights):
        h_ij = torch.einsum("ijb,bhw->ijhw", weights, basis)  # (N - 1, N, ...) radial filters
        e = (h_ij.to(spec.dtype) * spec[None]).sum(1)
        e = torch.cat([e, -e.sum(0, keepdim=True)])
        return _image(spec + e, (h, w))

    optim = torch.optim.Adam([wt], lr=lr)
    loss = None
    for _ in range(iters):
        y = unmix(wt)
        loss = exclusion_pairs(y[None, first], y[None, second], gain=4.0).sum()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    with torch.no_grad():
        y = unmix(wt) * sd + mu
    return y.numpy(), float(loss)


def evaluate(images: np.ndarray, truth: np.ndarray) -> dict:
    from crosstalk_matrix import score

    from ptycho_ddip.separation.metrics import gradient_correlation

    n = images.shape[0]
    rows = score(images, truth)
    gc = float(np.mean([gradient_correlation(images[i], images[j]) for i in range(n) for j in range(i + 1, n)]))
    return {"crosstalk": [r["crosstalk"] for r in rows], "correlation": [r["correlation"] for r in rows],
            "shared_edges": gc}


def run_case(cdir: str, odir: str, iters: int) -> dict:
    from ptycho_ddip.separation.mixing import estimate_mixing

    os.makedirs(odir, exist_ok=True)
    images, truth, meta = pass1_phase(cdir, odir)
    n = images.shape[0]
    out = {"case": os.path.basename(cdir), **meta, "rows": {}}
    out["rows"]["pass1"] = evaluate(images, truth)
    out["rows"]["truth"] = evaluate(truth, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mix = estimate_mixing(images, iters=iters)
        out["rows"]["estimate"] = {**evaluate(mix.unmix(images), truth), "criterion": float(mix.loss[-1])}
        best = None
        for kinds in itertools.product(("lowpass", "highpass"), repeat=n):
            m = estimate_mixing(images, kinds, iters=iters)
            if best is None or m.loss[-1] < best.loss[-1]:
                best = m
        out["rows"]["estimate-inferred"] = {**evaluate(best.unmix(images), truth), "criterion": float(best.loss[-1]),
                                            "kinds": list(best.ghost_kinds)}
    for name, fresnel in (("redistribute", False), ("redistribute-fresnel", True)):
        y, crit = redistribute(images, redistribution_basis(images.shape[1:], meta, fresnel), iters)
        out["rows"][name] = {**evaluate(y, truth), "criterion": crit}
        np.save(os.path.join(odir, f"{name}.npy"), y)
    return out


def table(results: list) -> str:
    rows = ["pass1", "estimate", "estimate-inferred", "redistribute", "redistribute-fresnel"]
    lines = ["| case | " + " | ".join(rows) + " | shared edges (truth / pass1 / best) |",
             "|---" * (len(rows) + 2) + "|"]
    for r in results:
        cells = []
        for name in rows:
            ct = r["rows"][name]["crosstalk"]
            cells.append(" / ".join(f"{c:.2f}" for c in ct))
        se = [r["rows"][k]["shared_edges"] for k in ("truth", "pass1", "redistribute-fresnel")]
        lines.append(f"| {r['case']} | " + " | ".join(cells) + f" | {se[0]:.2f} / {se[1]:.2f} / {se[2]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=800)
    p.add_argument("--only", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = sorted(d for d in os.listdir(args.cases) if os.path.exists(os.path.join(args.cases, d, "data.h5")))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    results = []
    path = os.path.join(args.out, "unmixing.json")
    if os.path.exists(path):
        results = [r for r in json.load(open(path)) if r["case"] in names]
    done = {r["case"] for r in results}
    for name in names:
        if name in done:
            continue
        results.append(run_case(os.path.join(args.cases, name), os.path.join(args.out, name), args.iters))
        with open(path, "w") as fh:
            json.dump(results, fh, indent=1)
        print(f"{name}: " + ", ".join(f"{k} {np.round(v['crosstalk'], 3).tolist()}" for k, v in
                                      results[-1]["rows"].items()), flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
