"""Throughput of the multislice forward model: position-evaluations per second (forward + backward).

Usage::

    python benchmarks/bench_forward.py                         # 128^2 and 256^2 windows, batch 64, 2 slices
    python benchmarks/bench_forward.py --sizes 128 --threads 1 --compare

Each figure is printed with a matmul GFLOP/s calibration measured on the same device just before it, so numbers
from different machines (or a machine shared with other jobs) can be compared. ``--compare`` also times a naive
variant (a Python loop over positions, slicing patches one by one, transfer functions recomputed on every call)
interleaved with the optimised batched model, and prints the speed ratio. Never part of the test suite.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ptycho_ddip.multislice.forward import MultisliceForward  # noqa: E402
from ptycho_ddip.multislice.physics import depth_of_field_m, wavelength_m  # noqa: E402
from ptycho_ddip.multislice.propagation import _kernel_cached, far_field  # noqa: E402

ENERGY_EV = 12000.0
PIXEL_M = 10e-9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, seconds: float = 0.3) -> float:
    """float32 matmul rate (GFLOP/s) of this device right now."""
    n = 1024 if device.type == "cpu" else 4096
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        reps += 1
        _sync(device)
        if time.perf_counter() - t0 > seconds:
            break
    return 2.0 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def make_case(size: int, batch: int, n_slices: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lam = wavelength_m(ENERGY_EV)
    slice_pos = [i * 3.5 * depth_of_field_m(PIXEL_M, lam) for i in range(n_slices)]
    H = W = 2 * size
    phase = 0.3 * torch.rand(n_slices, H, W, generator=g, dtype=torch.float64)
    obj = torch.polar(torch.ones_like(phase), phase).to(dtype=dtype, device=device).requires_grad_(True)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    probe = torch.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (size / 6) ** 2).to(dtype)
    probe = probe.to(device).requires_grad_(True)
    positions = torch.rand(batch, 2, generator=g, dtype=torch.float64) * (H - size - 1)
    fwd = MultisliceForward((size, size), slice_pos, lam, PIXEL_M)
    return fwd, obj, probe, positions


def chunk_for(size: int, dtype: torch.dtype, device: torch.device) -> int:
    """The reconstructor's default chunk (ReconstructionOptions.chunk_size=None): ~4 MiB of wave on CPU."""
    if device.type == "cuda":
        return 1 << 30
    itemsize = 16 if dtype == torch.complex128 else 8
    return max(1, (4 << 20) // (itemsize * size * size))


def optimised_step(fwd, obj, probe, positions, chunk: int = 1 << 30):
    """Batched model, positions in chunks of ``chunk`` with gradients accumulated (as the reconstructor does)."""
    for part in torch.split(positions, chunk):
        fwd.intensities(obj, probe, part).sum().backward()


def naive_step(fwd, obj, probe, positions):
    """Reference implementation of the same maths: loop over positions, no batching, no kernel cache."""
    h, w = fwd.probe_shape
    total = 0.0
    for y, x in positions.tolist():
        iy, ix = int(math.floor(y)), int(math.floor(x))
        fy = torch.fft.fftfreq(h, dtype=torch.float64, device=obj.device)[:, None]
        fx = torch.fft.fftfreq(w, dtype=torch.float64, device=obj.device)[None, :]
        ramp = torch.exp(-2j * math.pi * (fy * (y - iy) + fx * (x - ix))).to(probe.dtype)
        psi = torch.fft.ifft2(torch.fft.fft2(probe) * ramp)
        for s in range(obj.shape[0]):
            psi = psi * obj[s, iy:iy + h, ix:ix + w]
            if s < len(fwd.propagators):
                p = fwd.propagators[s]
                kernel = _kernel_cached.__wrapped__(p.shape, p.distance_m, p.wavelength_m, p.pixel_size_m, p.kind,
                                                    False, probe.dtype, obj.device)
                psi = torch.fft.ifft2(torch.fft.fft2(psi) * kernel)
        u = far_field(psi)
        total = total + (u.real**2 + u.imag**2).sum()
    total.backward()


def time_step(step, case, device, repeats: int, **kw) -> list:
    fwd, obj, probe, positions = case
    times = []
    for _ in range(repeats):
        obj.grad = probe.grad = None
        _sync(device)
        t0 = time.perf_counter()
        step(fwd, obj, probe, positions, **kw)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # process peak RSS (Linux: kB)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="probe window sizes (pixels)")
    ap.add_argument("--batch", type=int, default=64, help="positions per forward/backward call")
    ap.add_argument("--slices", type=int, default=2)
    ap.add_argument("--dtype", choices=["complex64", "complex128"], default="complex64")
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per variant (median reported)")
    ap.add_argument("--compare", action="store_true",
                    help="also time the naive per-position variant and the batched model without chunks")
    ap.add_argument("--chunk", type=int, default=None, help="positions per call (default: the reconstructor's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    dtype = getattr(torch, args.dtype)
    print(f"# multislice forward+backward, {args.slices} slices, batch {args.batch} (in chunks, --chunk), {args.dtype}, "
          f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    header = f"{'device':<8}{'window':>8}{'pos/s':>12}{'ms/batch':>10}{'matmul GFLOP/s':>16}{'peak MiB':>10}"
    if args.compare:
        header += f"{'unchunked pos/s':>16}{'naive pos/s':>13}{'vs naive':>9}"
    print(header)
    for name in devices:
        device = torch.device(name)
        for size in args.sizes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            case = make_case(size, args.batch, args.slices, device, dtype)
            gflops = matmul_gflops(device)
            chunk = args.chunk or chunk_for(size, dtype, device)
            time_step(optimised_step, case, device, 1, chunk=chunk)  # warm-up (kernel cache, allocator)
            fast, whole, slow = [], [], []
            for _ in range(args.repeats):  # interleaved so that load changes hit all variants alike
                fast += time_step(optimised_step, case, device, 1, chunk=chunk)
                if args.compare:
                    whole += time_step(optimised_step, case, device, 1)
                    slow += time_step(naive_step, case, device, 1)
            t = statistics.median(fast)
            line = (f"{name:<8}{size:>6}^2{args.batch / t:>12.1f}{1e3 * t:>10.1f}{gflops:>16.1f}"
                    f"{peak_mib(device):>10.0f}")
            if args.compare:
                ts, tw = statistics.median(slow), statistics.median(whole)
                line += f"{args.batch / tw:>16.1f}{args.batch / ts:>13.1f}{ts / t:>8.2f}x"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
