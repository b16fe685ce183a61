"""Correctness on a GPU, in one process: forward model, reconstructor, separation quality, the command line end to end.

    python benchmarks/cuda_check.py --out results/          # on a GPU machine (about 1 min on an H200)
    python benchmarks/cuda_check.py --smoke --out /tmp/c    # the same code paths on the CPU, tiny sizes
    python benchmarks/cuda_check.py --cpu-reference         # recompute the CPU separation reference (slow)

Each check prints ``PASS``/``FAIL``/``INFO`` lines with its numbers; all of them go to ``cuda_check.json`` (written
after every check). Exit status 1 when any check fails. The tolerances, and why:

forward
    The multislice forward model (3 slices, sub-pixel positions, exact propagator) in complex64 on the device against
    the same on the CPU, both against a complex128 CPU reference; intensities compared as max |difference| / peak.
    complex64 rounding of FFTs of n x n points is ~1e-7 x log2(n) per pass; PASS when the device-CPU difference is
    at most 2e-5 of the peak and the device's error against complex128 at most 3 x the CPU's + 1e-6. Gradients of
    the amplitude loss with respect to the object and probe: relative L2 difference device-CPU at most 1e-4 (and 3 x
    the CPU's own complex64 error + 1e-6). complex128 on both: 1e-10. The adjoint identity <A x, y> = <x, A* y> on
    the device: relative difference at most 1e-5 (complex64).
reconstruct
    10 epochs of the reconstructor (Adam, minibatches of 8) on a 64 x 64 two-slice simulation on the device and on
    the CPU (complex64, same seed). Adam normalises steps, so float rounding moves barely lit pixels by up to a
    step; the comparison is therefore relative to the rounding effect itself, measured on the CPU as complex64
    against complex128: PASS when the device-CPU difference (loss curve, object phase in the lit region) is at most
    3 x that + 1e-6.
separation
    The DDIP on the 64 x 64 au-nio blend of tests/test_separation.py::test_quality_on_small_au_nio_blend, 300 epochs,
    4 ensemble members batched on the device (the CUDA default), for the default estimated mixing and for the paper's
    learnable mixing, with cuDNN TF32 on (PyTorch's default) and off. Float32 fits diverge like seeds under any
    rounding change, so quality is compared in distribution against 4 single CPU runs (seeds 0-3, numbers in
    CPU_REFERENCE, measured on the project's 2-core CPU machine with ``--cpu-reference``): PASS when the device's
    median ghost-to-signal ratio (GSR) of each slice is at most 2 x the CPU runs' largest + 0.005 and its median
    correlation with the truth at least the CPU's smallest - 0.02; for the default also every member within the
    test's bounds (GSR at most 0.3 x the input's on slice 1, 0.2 x on slice 2).
cli
    ``ptycho-ddip simulate`` (CPU) -> ``reconstruct --device cuda`` -> ``pipeline --device cuda`` (the sizes of
    tests/test_pipeline.py) -> ``separate --device cuda --ensemble 2``, as subprocesses: exit status 0, every output
    written and finite, the reconstruction's loss falling, the pipeline's metrics finite.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

CHECKS = ("forward", "reconstruct", "separation", "cli")

#: 4 single CPU runs (seeds 0-3, member_batch 1) of the separation check's case, measured with --cpu-reference on the
#: project's 2-core CPU machine (1 thread, torch 2.13.0, commit dabfcc0 + working tree of 2026-12-04); per mixing:
#: "gsr"/"corr" [[slice 1, slice 2] per member], the inputs' "gsr_in"/"corr_in", the wall "seconds" of the 4 runs.
CPU_REFERENCE = {
    "estimate": {
        "gsr": [[0.020897, 0.0019905], [0.0044668, 0.0016347], [0.0058057, 0.0013805], [0.0048102, 0.0013833]],
        "corr": [[0.89179, 0.99924], [0.96123, 0.99855], [0.9366, 0.99855], [0.91806, 0.99959]],
        "gsr_in": [0.5733, 0.32038],
        "corr_in": [0.86118, 0.95142],
        "seconds": 138,
    },
    "learn": {
        "gsr": [[0.20781, 0.02116], [0.29803, 0.031908], [0.11513, 0.024431], [0.21834, 0.0032219]],
        "corr": [[0.95772, 0.9673], [0.92367, 0.96251], [0.97266, 0.96669], [0.91028, 0.95551]],
        "gsr_in": [0.5733, 0.32038],
        "corr_in": [0.86118, 0.95142],
        "seconds": 285,
    },
}


class Checker:
    def __init__(self, out_dir: str, meta: dict):
        self.out_dir = out_dir
        self.data = {"meta": meta, "checks": [], "errors": {}}
        os.makedirs(out_dir, exist_ok=True)

    def record(self, name: str, ok, detail: str, **numbers) -> None:
        status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
        self.data["checks"].append({"check": name, "status": status, "detail": detail, **numbers})
        print(f"{status} {name}: {detail}", flush=True)
        self.save()

    def error(self, section: str, exc: BaseException) -> None:
        self.data["errors"][section] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.data["checks"].append({"check": section, "status": "FAIL", "detail": f"crashed: {exc!r}"})
        print(f"FAIL {section}: crashed:", flush=True)
        traceback.print_exc()
        self.save()

    def save(self) -> None:
        path = os.path.join(self.out_dir, "cuda_check.json")
        with open(path + ".tmp", "w") as fh:
            json.dump(self.data, fh, indent=1, default=float)
        os.replace(path + ".tmp", path)

    @property
    def failed(self) -> int:
        return sum(c["status"] == "FAIL" for c in self.data["checks"])


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().to(torch.complex128), b.detach().cpu().to(torch.complex128)
    return float((a - b).abs().pow(2).sum().sqrt() / b.abs().pow(2).sum().sqrt().clamp_min(1e-300))


# ----------------------------------------------------------------------------------------------- forward

def _forward_case(window: int, n_slices: int = 3, n_pos: int = 24, seed: int = 0):
    from ptycho_ddip.multislice.physics import depth_of_field_m, wavelength_m

    rng = np.random.default_rng(seed)
    lam = wavelength_m(12000.0)
    H = W = 2 * window
    obj = np.exp(1j * rng.normal(0, 0.4, (n_slices, H, W)) - rng.uniform(0, 0.2, (n_slices, H, W)))
    yy, xx = np.mgrid[:window, :window] - window / 2
    probe = np.exp(-(yy**2 + xx**2) / (window / 5) ** 2) * np.exp(1j * rng.normal(0, 0.2, (window, window)))
    positions = rng.uniform(0, H - window - 1, (n_pos, 2))
    slice_pos = [s * 3.5 * depth_of_field_m(10e-9, lam) for s in range(n_slices)]
    return obj, probe, positions, slice_pos, lam


def _forward_eval(fwd, obj, probe, positions, dtype, dev, measured=None):
    """Intensities and the gradients of the amplitude loss w.r.t. object and probe."""
    o = torch.as_tensor(obj).to(dtype=dtype, device=dev).requires_grad_(True)
    p = torch.as_tensor(probe).to(dtype=dtype, device=dev).requires_grad_(True)
    inten = fwd.intensities(o, p, positions)
    if measured is None:
        measured = inten.detach().cpu().double() * 1.1 + 0.5
    m = torch.as_tensor(measured).to(device=dev, dtype=inten.dtype)
    loss = (torch.sqrt(inten + 1e-12) - torch.sqrt(m)).pow(2).mean()
    loss.backward()
    return inten.detach().cpu().double(), o.grad.detach().cpu(), p.grad.detach().cpu(), measured


def check_forward(ck: Checker, args, dev: torch.device) -> None:
    from ptycho_ddip.multislice.forward import MultisliceForward

    cpu = torch.device("cpu")
    for window in args.windows:
        obj, probe, positions, slice_pos, lam = _forward_case(window)
        fwd = MultisliceForward((window, window), slice_pos, lam, 10e-9)
        ref, go_ref, gp_ref, meas = _forward_eval(fwd, obj, probe, positions, torch.complex128, cpu)
        c64, go_c, gp_c, _ = _forward_eval(fwd, obj, probe, positions, torch.complex64, cpu, meas)
        d64, go_d, gp_d, _ = _forward_eval(fwd, obj, probe, positions, torch.complex64, dev, meas)
        d128, go_d128, _, _ = _forward_eval(fwd, obj, probe, positions, torch.complex128, dev, meas)
        peak = float(ref.max())
        e_cpu = float((c64 - ref).abs().max()) / peak
        e_dev = float((d64 - ref).abs().max()) / peak
        e_dc = float((d64 - c64).abs().max()) / peak
        e128 = float((d128 - ref).abs().max()) / peak
        ok = e_dc <= 2e-5 and e_dev <= 3 * e_cpu + 1e-6 and e128 <= 1e-10
        ck.record(f"forward intensities {window}x{window}", ok,
                  f"complex64 {dev.type} vs CPU {e_dc:.2e} of the peak (<= 2e-5); vs complex128: {dev.type} "
                  f"{e_dev:.2e}, CPU {e_cpu:.2e} (<= 3 x CPU + 1e-6); complex128 {dev.type} vs CPU {e128:.1e} "
                  f"(<= 1e-10)", window=window, dev_vs_cpu=e_dc, dev_vs_c128=e_dev, cpu_vs_c128=e_cpu,
                  c128_dev_vs_cpu=e128)
        g_cpu = max(rel_l2(go_c, go_ref), rel_l2(gp_c, gp_ref))
        g_dc = max(rel_l2(go_d, go_c), rel_l2(gp_d, gp_c))
        g_dev = max(rel_l2(go_d, go_ref), rel_l2(gp_d, gp_ref))
        g128 = rel_l2(go_d128, go_ref)
        ok = g_dc <= max(1e-4, 3 * g_cpu + 1e-6) and g_dev <= 3 * g_cpu + 1e-6 and g128 <= 1e-10
        ck.record(f"forward gradients {window}x{window}", ok,
                  f"object/probe gradients, relative L2: complex64 {dev.type} vs CPU {g_dc:.2e}; vs complex128: "
                  f"{dev.type} {g_dev:.2e}, CPU {g_cpu:.2e}; complex128 {dev.type} vs CPU {g128:.1e}",
                  window=window, grad_dev_vs_cpu=g_dc, grad_dev_vs_c128=g_dev, grad_cpu_vs_c128=g_cpu,
                  grad_c128_dev_vs_cpu=g128)
        # adjoint identity of the linear part on the device
        g = torch.Generator().manual_seed(window)
        o = torch.as_tensor(obj).to(dtype=torch.complex64, device=dev)
        corners, _ = fwd.split_positions(fwd.as_positions(positions))
        patches = fwd.extract_patches(o, corners.to(dev))
        shape = (positions.shape[0], window, window)
        x = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)).to(dev)
        y = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)).to(dev)
        lhs = torch.vdot(fwd.wave_forward(patches, x).flatten(), y.flatten())
        rhs = torch.vdot(x.flatten(), fwd.wave_adjoint(patches, y).flatten())
        rel = float((lhs - rhs).abs() / lhs.abs())
        ck.record(f"adjoint identity {window}x{window}", rel <= 1e-5,
                  f"|<Ax,y> - <x,A*y>| / |<Ax,y>| = {rel:.2e} on {dev.type}, complex64 (<= 1e-5)", adjoint_rel=rel)


# ----------------------------------------------------------------------------------------------- reconstruct

def check_reconstruct(ck: Checker, args, dev: torch.device) -> None:
    from ptycho_ddip.multislice.reconstruct import ReconstructionOptions, reconstruct
    from ptycho_ddip.multislice.simulate import simulate
    from ptycho_ddip.multislice.xrf import illuminated_mask

    ds = simulate(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=6.0, dose=1e5,
                  seed=7)
    lit = illuminated_mask(ds.positions_px, ds.probe, ds.object_shape, 0.3)
    runs, times = {}, {}
    for label, device, dtype in (("cpu64", "cpu", "complex64"), ("cpu128", "cpu", "complex128"),
                                 ("dev64", str(dev), "complex64")):
        opts = ReconstructionOptions(epochs=args.recon_epochs, batch_size=8, seed=0, device=device, dtype=dtype)
        t = time.perf_counter()
        runs[label] = reconstruct(ds, opts, progress=False)
        times[label] = time.perf_counter() - t

    def diffs(a, b):
        loss = float(np.max(np.abs(a.loss - b.loss) / np.abs(b.loss)))
        dphi = np.angle(a.object * np.conj(b.object))[:, lit]
        return loss, float(np.max(np.abs(dphi)))

    l_dc, p_dc = diffs(runs["dev64"], runs["cpu64"])
    l_r, p_r = diffs(runs["cpu64"], runs["cpu128"])
    falling = bool(runs["dev64"].loss[-1] < runs["dev64"].loss[0])
    ok = falling and l_dc <= 3 * l_r + 1e-6 and p_dc <= 3 * p_r + 1e-6
    ck.record("reconstruct device vs CPU", ok,
              f"{args.recon_epochs} epochs, 64x64, complex64: loss curve max rel diff {dev.type}-CPU {l_dc:.2e} "
              f"(CPU c64-c128 {l_r:.2e}), lit-region phase max diff {p_dc:.2e} rad (CPU c64-c128 {p_r:.2e}); "
              f"loss {runs['dev64'].loss[0]:.4g} -> {runs['dev64'].loss[-1]:.4g}; wall s: "
              + ", ".join(f"{k} {v:.1f}" for k, v in times.items()),
              loss_dev_vs_cpu=l_dc, loss_c64_vs_c128=l_r, phase_dev_vs_cpu=p_dc, phase_c64_vs_c128=p_r,
              seconds=times)


# ----------------------------------------------------------------------------------------------- separation

def quality_runs(dev: torch.device, mixing: str, size: int, epochs: int, members: int, member_batch: int,
                 tf32: bool | None = None, shared: dict | None = None) -> dict:
    """Per-member GSR and correlation of the separation check's case; ``shared`` caches the mixing estimate."""
    from ptycho_ddip.phantoms import blend, make_phantom
    from ptycho_ddip.separation.metrics import separation_metrics
    from ptycho_ddip.separation.options import SeparationOptions
    from ptycho_ddip.separation.separate import (assemble_result, estimate_target_mixing, fit_members,
                                                 normalize_jointly, validate_images)

    b = blend(make_phantom("au-nio", (size, size), seed=0).normalized())
    x = validate_images(b.inputs)
    method = ({"method": "estimate"} if mixing == "estimate"  # "learn": the old default of mixing="learn"
              else {"method": "paper", "learned": {"exclusion_balance": True, "exclusion_input": 1.0}})
    opts = SeparationOptions(epochs=epochs, seed=0, ensemble=members, member_batch=member_batch, device=str(dev),
                             **method)
    mix = None
    if mixing == "estimate":
        key = ("mix", size)
        if shared is None or key not in shared:
            mix = estimate_target_mixing(normalize_jointly(x)[0], opts)
            if shared is not None:
                shared[key] = mix
        else:
            mix = shared[key]
    old = torch.backends.cudnn.allow_tf32
    if tf32 is not None:
        torch.backends.cudnn.allow_tf32 = tf32
    try:
        t = time.perf_counter()
        res = assemble_result(x, fit_members(x, opts, progress=False, mixing=mix), opts)
        sync(dev)
        seconds = time.perf_counter() - t
    finally:
        torch.backends.cudnn.allow_tf32 = old
    seps = res.members if res.members is not None else res.separated[None]
    rows = [separation_metrics(s, b.truth, b.ghosts) for s in seps]
    m_in = separation_metrics(b.inputs, b.truth, b.ghosts)
    return {"gsr": [[r[i]["ghost_to_signal"] for i in range(2)] for r in rows],
            "corr": [[r[i]["correlation"] for i in range(2)] for r in rows],
            "gsr_in": [m["ghost_to_signal"] for m in m_in], "corr_in": [m["correlation"] for m in m_in],
            "seconds": seconds}


def check_separation(ck: Checker, args, dev: torch.device) -> None:
    shared: dict = {}
    for mixing in args.mixings:
        ref = CPU_REFERENCE.get(mixing) if not args.smoke else None
        if ref is None or args.live_cpu_reference:
            ref = quality_runs(torch.device("cpu"), mixing, args.sep_size, args.sep_epochs, args.sep_members, 1,
                               shared=shared)
            ck.record(f"separation CPU reference ({mixing})", None, f"computed in this run: GSR {_fmt(ref['gsr'])}",
                      reference=ref)
        for tf32 in (True, False):
            got = quality_runs(dev, mixing, args.sep_size, args.sep_epochs, args.sep_members, 0, tf32=tf32,
                               shared=shared)
            gsr, corr = np.array(got["gsr"]), np.array(got["corr"])
            rg, rc = np.array(ref["gsr"]), np.array(ref["corr"])
            med_g, med_c = np.median(gsr, axis=0), np.median(corr, axis=0)
            ok_g = bool(np.all(med_g <= 2 * rg.max(axis=0) + 0.005))
            ok_c = bool(np.all(med_c >= rc.min(axis=0) - 0.02))
            ok = ok_g and ok_c
            bounds = ""
            if mixing == "estimate" and not args.smoke:  # a smoke run's few epochs cannot meet the test's bounds
                gin = np.array(got["gsr_in"])
                within = bool(np.all(gsr[:, 0] <= 0.3 * gin[0]) and np.all(gsr[:, 1] <= 0.2 * gin[1]))
                ok = ok and within
                bounds = f"; every member within the test's bounds (0.3/0.2 x input {_fmt(gin)}): {within}"
            ck.record(f"separation {mixing} on {dev.type}, cuDNN TF32 {'on' if tf32 else 'off'}", ok,
                      f"{args.sep_members} members batched, {args.sep_epochs} epochs, {got['seconds']:.1f} s: median "
                      f"GSR {_fmt(med_g)} (CPU runs {_fmt(rg.min(0))}-{_fmt(rg.max(0))}), median corr {_fmt(med_c)} "
                      f"(CPU {_fmt(rc.min(0))}-{_fmt(rc.max(0))}){bounds}", mixing=mixing, tf32=tf32, result=got,
                      reference=ref)


def _fmt(v) -> str:
    return "[" + ", ".join(f"{float(x):.4g}" for x in np.ravel(v)) + "]"


# ----------------------------------------------------------------------------------------------- CLI

def cli_command() -> tuple[list, str]:
    exe = shutil.which("ptycho-ddip")
    if exe:
        return [exe], exe
    # `python -m ptycho_ddip.cli` would not see the subcommands registered by the plugin modules (they register
    # into ptycho_ddip.cli, not __main__), so the fallback imports main from the package
    return [sys.executable, "-c", "import sys; from ptycho_ddip.cli import main; sys.exit(main())"], \
        "python -c 'from ptycho_ddip.cli import main' (no ptycho-ddip on PATH)"


def check_cli(ck: Checker, args, dev: torch.device) -> None:
    import h5py

    from ptycho_ddip.io import read_reconstruction, read_separation_result

    cmd, how = cli_command()
    ck.record("cli entry point", None, how)
    work = tempfile.mkdtemp(prefix="cuda_check_cli_")
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def run(step: str, argv: list) -> bool:
        t = time.perf_counter()
        p = subprocess.run(cmd + argv, cwd=work, env=env, capture_output=True, text=True, timeout=args.cli_timeout)
        dt = time.perf_counter() - t
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        ck.record(f"cli {step}", p.returncode == 0, f"exit {p.returncode} in {dt:.1f} s: ptycho-ddip "
                  + " ".join(argv) + ("" if p.returncode == 0 else " | " + " / ".join(tail)), seconds=dt)
        if p.returncode != 0:
            print(p.stdout[-3000:], p.stderr[-3000:], sep="\n", flush=True)
        return p.returncode == 0

    try:
        sim = ["--shape", "64", "64", "--probe-shape", "32", "32", "--probe", "gaussian", "--probe-fwhm-m", "80e-9",
               "--step-px", "6", "--dose", "1e5", "--seed", "7"]
        if not run("simulate", ["simulate", "-o", "data.h5", *sim]):
            return
        d = str(dev.type)
        if run("reconstruct", ["reconstruct", "data.h5", "-o", "rec.h5", "--epochs", str(args.cli_epochs),
                               "--batch-size", "8", "--device", d, "--no-progress"]):
            r = read_reconstruction(os.path.join(work, "rec.h5"))
            ok = (np.all(np.isfinite(r["object"])) and r["loss"][-1] < r["loss"][0]
                  and r["config"]["device"] == d)
            ck.record("cli reconstruct result", bool(ok), f"object {r['object'].shape} finite, loss "
                      f"{r['loss'][0]:.4g} -> {r['loss'][-1]:.4g}, config device {r['config']['device']!r}")
        cfg = {"pass1": {"epochs": args.cli_epochs, "batch_size": 8},
               "separation": {"epochs": 30 if not args.smoke else 4, "monitor_every": 10},
               "pass2": {"epochs": 4 if not args.smoke else 2, "batch_size": 8}}
        with open(os.path.join(work, "pipeline.json"), "w") as fh:
            json.dump(cfg, fh)
        if run("pipeline", ["pipeline", "data.h5", "-o", "run", "--config", "pipeline.json", "--device", d,
                            "--no-progress"]):
            run_dir = os.path.join(work, "run")
            metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
            stages = metrics.get("stages", {})
            vals = [r[k] for s in ("pass1", "separation", "pass2") for r in stages.get(s, {}).get("slices", [])
                    for k in ("ghost_to_signal", "correlation")]
            files = sorted(os.listdir(run_dir))
            ok = bool(vals) and all(np.isfinite(vals)) and {"pass1.h5", "separation.h5", "pass2.h5"} <= set(files)
            gsr = {s: [round(r["ghost_to_signal"], 4) for r in stages.get(s, {}).get("slices", [])]
                   for s in ("pass1", "separation", "pass2")}
            ck.record("cli pipeline result", ok, f"{len(files)} files, metrics finite; GSR per stage {gsr}", gsr=gsr)
            with h5py.File(os.path.join(run_dir, "separation_input.h5"), "r") as h5:
                np.save(os.path.join(work, "slices.npy"), h5["images"][()])
            if run("separate ensemble", ["separate", "slices.npy", "-o", "sep.h5", "--epochs", "50", "--ensemble",
                                         "2", "--device", d, "--no-progress"]):
                s = read_separation_result(os.path.join(work, "sep.h5"))
                ok = bool(np.all(np.isfinite(s["separated"])) and s.get("std") is not None
                          and np.all(np.isfinite(s["std"])))
                ck.record("cli separate result", ok, f"separated {s['separated'].shape}, std finite")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    words = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".")
    ap.add_argument("--device", default=None, help="default: cuda when available (cpu with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: the same code paths, for checking")
    ap.add_argument("--checks", type=words, default=list(CHECKS))
    ap.add_argument("--windows", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256])
    ap.add_argument("--recon-epochs", type=int, default=10)
    ap.add_argument("--mixings", type=words, default=["estimate", "learn"])
    ap.add_argument("--sep-size", type=int, default=64)
    ap.add_argument("--sep-epochs", type=int, default=300)
    ap.add_argument("--sep-members", type=int, default=4)
    ap.add_argument("--live-cpu-reference", action="store_true",
                    help="compute the CPU separation reference in this run instead of CPU_REFERENCE (slow)")
    ap.add_argument("--cpu-reference", action="store_true",
                    help="only compute the CPU separation reference and print it (for CPU_REFERENCE)")
    ap.add_argument("--cli-epochs", type=int, default=6)
    ap.add_argument("--cli-timeout", type=float, default=120)
    args = ap.parse_args(argv)
    if args.cpu_reference:
        ref = {m: quality_runs(torch.device("cpu"), m, args.sep_size, args.sep_epochs, args.sep_members, 1)
               for m in args.mixings}
        print(json.dumps(ref))
        return 0
    if args.smoke:
        args.device = args.device or "cpu"
        args.windows, args.recon_epochs, args.sep_size, args.sep_epochs = [16, 32], 3, 48, 8
        args.sep_members, args.cli_epochs = 2, 2
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    meta = {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU",
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
            "cudnn_tf32_default": torch.backends.cudnn.allow_tf32,
            "matmul_tf32_default": torch.backends.cuda.matmul.allow_tf32, "smoke": args.smoke,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    ck = Checker(args.out, meta)
    print(f"# cuda_check on {meta['device_name']} ({dev}), torch {meta['torch']}, CUDA {meta['cuda']}, "
          f"cuDNN {meta['cudnn']}, cuDNN TF32 default {meta['cudnn_tf32_default']}", flush=True)
    funcs = {"forward": check_forward, "reconstruct": check_reconstruct, "separation": check_separation,
             "cli": check_cli}
    for name in args.checks:
        t = time.perf_counter()
        try:
            funcs[name](ck, args, dev)
        except Exception as exc:  # noqa: BLE001 - one crash must not cost the other checks
            ck.error(name, exc)
        print(f"--- {name}: {time.perf_counter() - t:.1f} s", flush=True)
    n = len(ck.data["checks"])
    print(f"\ncuda_check: {ck.failed} FAIL of {n} checks ({meta['device_name']})", flush=True)
    return 1 if ck.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
