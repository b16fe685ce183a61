"""The multislice forward model against an independent numpy implementation; gradients; adjoint of the linear part."""
import math

import numpy as np
import pytest
import torch

from ptycho_ddip.multislice.forward import MultisliceForward, PositionError
from ptycho_ddip.multislice.physics import wavelength_m

torch.set_num_threads(1)

LAM = wavelength_m(12000.0)
DX = 10e-9


def numpy_forward(obj, probe, positions, slice_pos_m, lam, dx):
    """Independent reference: explicit loops over positions and slices, numpy FFTs, the documented model:
    sub-pixel shift of the probe by a Fourier phase ramp, multiply / angular-spectrum propagate per slice
    (exp(i 2 pi z / lam (sqrt(1 - (lam f)^2) - 1)), evanescent band 0), far field fftshift(fft2(., ortho)), |.|^2.
    """
    n_slices = obj.shape[0]
    h, w = probe.shape
    fy, fx = np.fft.fftfreq(h, dx)[:, None], np.fft.fftfreq(w, dx)[None, :]
    q = lam**2 * (fy**2 + fx**2)
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    out = []
    for y, x in positions:
        iy, ix = int(math.floor(y)), int(math.floor(x))
        ramp = np.exp(-2j * np.pi * (ky * (y - iy) + kx * (x - ix)))
        psi = np.fft.ifft2(np.fft.fft2(probe) * ramp)
        for s in range(n_slices):
            psi = psi * obj[s, iy:iy + h, ix:ix + w]
            if s + 1 < n_slices:
                z = slice_pos_m[s + 1] - slice_pos_m[s]
                kernel = np.where(q < 1, np.exp(2j * np.pi * z / lam * (np.sqrt(np.clip(1 - q, 0, None)) - 1)), 0)
                psi = np.fft.ifft2(np.fft.fft2(psi) * kernel)
        far = np.fft.fftshift(np.fft.fft2(psi, norm="ortho"))
        out.append(np.abs(far) ** 2)
    return np.stack(out)


def _random_case(seed, n_slices=3, shape=(40, 36), probe_shape=(16, 12)):
    rng = np.random.default_rng(seed)
    obj = np.exp(1j * rng.normal(0, 0.5, (n_slices, *shape)) - rng.uniform(0, 0.3, (n_slices, *shape)))
    yy, xx = np.mgrid[: probe_shape[0], : probe_shape[1]]
    probe = np.exp(-((yy - probe_shape[0] / 2) ** 2 + (xx - probe_shape[1] / 2) ** 2) / 20.0) * np.exp(
        1j * rng.normal(0, 0.3, probe_shape))
    return obj, probe


def test_forward_matches_numpy_reference_float64():
    # the reference's plain sqrt(1 - q) - 1 carries ~1e-16 * 2 pi z / lambda ~ 3e-11 rad of rounding at z = 4.5 um
    obj, probe = _random_case(0)
    slice_pos = [0.0, 3e-6, 7.5e-6]
    positions = np.array([[0.0, 0.0], [3.25, 7.5], [24.0, 24.0], [10.9, 0.1], [17.5, 11.0]])
    fwd = MultisliceForward(probe.shape, slice_pos, LAM, DX)
    got = fwd.intensities(torch.from_numpy(obj), torch.from_numpy(probe), positions).numpy()
    ref = numpy_forward(obj, probe, positions, slice_pos, LAM, DX)
    assert got.dtype == np.float64
    assert np.max(np.abs(got - ref)) / np.max(ref) < 1e-10


def test_integer_shift_consistency_and_fractional_shift_direction():
    """A probe at position (y + 1, x) on object O equals the probe at (y, x) on O shifted by one pixel, and the
    Fourier sub-pixel shift moves a well-sampled Gaussian probe (sigma 3 px in a 40-px window: < 3e-10 at the edge,
    spectrum exp(-44) at Nyquist) to exactly the analytic Gaussian at (y + dy, x + dx)."""
    obj, probe = _random_case(1, n_slices=1)
    fwd = MultisliceForward(probe.shape, [0.0], LAM, DX)
    o, p = torch.from_numpy(obj), torch.from_numpy(probe)
    a = fwd.exit_waves(o, p, [[5.0, 4.0]])
    b = fwd.exit_waves(torch.roll(o, 1, dims=1), p, [[6.0, 4.0]])
    assert torch.allclose(a, b, atol=1e-13)
    n = 40
    yy, xx = np.mgrid[:n, :n].astype(np.float64)
    gauss = lambda cy, cx: np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2)).astype(np.complex128)
    fwd40 = MultisliceForward((n, n), [0.0], LAM, DX)
    flat = torch.ones(1, 50, 50, dtype=torch.complex128)
    got = fwd40.exit_waves(flat, torch.from_numpy(gauss(20, 20)), [[3.25, 6.7]])[0].numpy()
    assert np.max(np.abs(got - gauss(20.25, 20.7))) < 1e-8


def test_gradcheck_float64():
    obj, probe = _random_case(2, n_slices=2, shape=(11, 10), probe_shape=(6, 5))
    fwd = MultisliceForward(probe.shape, [0.0, 2e-6], LAM, DX)
    positions = torch.tensor([[1.3, 2.6], [0.0, 4.0], [5.0, 0.75]], dtype=torch.float64)
    o = torch.from_numpy(obj).requires_grad_(True)
    p = torch.from_numpy(probe).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: fwd.intensities(a, b, positions), (o, p))


def test_linear_part_adjoint():
    obj, _ = _random_case(3, n_slices=3, shape=(16, 12), probe_shape=(16, 12))
    fwd = MultisliceForward((16, 12), [0.0, 4e-6, 9e-6], LAM, DX)
    patches = torch.from_numpy(obj)[:, None].expand(3, 2, 16, 12)  # (n_slices, n, h, w)
    g = torch.Generator().manual_seed(0)
    x = torch.complex(torch.randn(2, 16, 12, generator=g, dtype=torch.float64),
                      torch.randn(2, 16, 12, generator=g, dtype=torch.float64))
    y = torch.complex(torch.randn(2, 16, 12, generator=g, dtype=torch.float64),
                      torch.randn(2, 16, 12, generator=g, dtype=torch.float64))
    lhs = complex(torch.sum(fwd.wave_forward(patches, x).conj() * y))
    rhs = complex(torch.sum(x.conj() * fwd.wave_adjoint(patches, y)))
    assert abs(lhs - rhs) / abs(lhs) < 1e-12


def test_free_propagation_option_and_defaults():
    obj, probe = _random_case(4, n_slices=2)
    o, p = torch.from_numpy(obj).to(torch.complex64), torch.from_numpy(probe).to(torch.complex64)
    far = MultisliceForward(probe.shape, [0.0, 2e-6], LAM, DX)
    assert far.intensities(o, p, [[1.0, 2.0]]).dtype == torch.float32
    near = MultisliceForward(probe.shape, [0.0, 2e-6], LAM, DX, free_prop_m=1e-4)
    exit_wave = near.exit_waves(o, p, [[1.0, 2.0]])
    assert torch.allclose(near.intensities(o, p, [[1.0, 2.0]]), near.free_propagator.forward(exit_wave).abs() ** 2,
                          atol=1e-4)
    with pytest.raises(ValueError):
        MultisliceForward(probe.shape, [0.0, 2e-6], LAM, DX, free_prop_m=-1.0)


def test_energy_is_conserved_for_transparent_object():
    _, probe = _random_case(5, n_slices=1)
    fwd = MultisliceForward(probe.shape, [0.0, 5e-6], LAM, DX)
    flat = torch.ones(2, 40, 36, dtype=torch.complex128)
    inten = fwd.intensities(flat, torch.from_numpy(probe), [[2.0, 3.0], [7.5, 1.25]])
    power = float(np.sum(np.abs(probe) ** 2))
    assert torch.allclose(inten.sum(dim=(1, 2)), torch.full((2,), power, dtype=torch.float64), rtol=1e-12)


def test_positions_outside_object_raise():
    obj, probe = _random_case(6, n_slices=1)
    fwd = MultisliceForward(probe.shape, [0.0], LAM, DX)
    o, p = torch.from_numpy(obj), torch.from_numpy(probe)
    for bad in ([[-0.5, 0.0]], [[25.0, 0.0]], [[0.0, 24.5 + 0.5]], [[float("nan"), 0.0]]):
        with pytest.raises(PositionError, match="position|NaN"):
            fwd.intensities(o, p, bad)
    fwd.intensities(o, p, [[24.99, 24.0]])  # floor(y) + h = 40 still fits
    with pytest.raises(ValueError, match="object must have shape"):
        fwd.intensities(o[0], p, [[0.0, 0.0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    obj, probe = _random_case(7, n_slices=2)
    fwd = MultisliceForward(probe.shape, [0.0, 5e-6], LAM, DX)
    positions = [[1.5, 2.25], [20.0, 3.0]]
    cpu = fwd.intensities(torch.from_numpy(obj), torch.from_numpy(probe), positions)
    gpu = fwd.intensities(torch.from_numpy(obj).cuda(), torch.from_numpy(probe).cuda(), positions)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9 * float(cpu.max()))
