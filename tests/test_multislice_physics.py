"""Physics of the multislice package: units, transfer functions, propagator identities (DESIGN.md section 6)."""
import math

import numpy as np
import pytest
import torch

from ptycho_ddip.multislice.physics import (HC_EV_M, depth_of_field_m, energy_ev, fresnel_number, slice_spacings_m,
                                            wavelength_m)
from ptycho_ddip.multislice.propagation import (Propagator, far_field, far_field_adjoint, spatial_frequencies,
                                                transfer_function, transfer_function_cache_info)

torch.set_num_threads(1)

E_EV = 12000.0
LAM = wavelength_m(E_EV)
DX = 10e-9


def _cfield(shape, seed, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    re = torch.randn(shape, generator=g, dtype=torch.float64)
    im = torch.randn(shape, generator=g, dtype=torch.float64)
    return torch.complex(re, im).to(dtype)


def _inner(a, b):
    return complex(torch.sum(a.conj() * b))


def test_units():
    # 12 keV <-> 1.0332 A (hc = 12.39842 keV A); DOF of the paper's ZP/NiO data: dr = 8.7 nm -> 3.9-4.0 um
    assert wavelength_m(12000.0) == pytest.approx(1.0332016536e-10, rel=1e-9)
    assert energy_ev(wavelength_m(8000.0)) == pytest.approx(8000.0, rel=1e-14)
    assert HC_EV_M == pytest.approx(1.239841984e-6, rel=1e-9)
    assert depth_of_field_m(8.7e-9, LAM) == pytest.approx(5.4 * 8.7e-9**2 / LAM, rel=1e-14)
    assert 3.8e-6 < depth_of_field_m(8.7e-9, LAM) < 4.0e-6
    assert fresnel_number(1e-6, 1.0, 1e-10) == pytest.approx(1e-2)
    np.testing.assert_allclose(slice_spacings_m([0.0, 2e-6, 5e-6]), [2e-6, 3e-6])
    with pytest.raises(ValueError):
        wavelength_m(-1.0)
    with pytest.raises(ValueError):
        slice_spacings_m([0.0, 0.0])


def test_frequency_grid_has_no_half_bin_shift():
    fy, fx = spatial_frequencies((8, 6), DX)
    np.testing.assert_allclose(fy[:, 0].numpy(), np.fft.fftfreq(8, DX), rtol=0, atol=0)
    np.testing.assert_allclose(fx[0].numpy(), np.fft.fftfreq(6, DX), rtol=0, atol=0)
    assert fy[0, 0] == 0 and fx[0, 0] == 0


@pytest.mark.parametrize("z", [10e-6, 50e-6])
@pytest.mark.parametrize("kind,tol", [("paraxial", 1e-10), ("exact", 1e-6)])
def test_gaussian_beam_matches_analytic_fresnel(z, kind, tol):
    """A Gaussian u0 = exp(-r^2 / w0^2) propagates (paraxially, carrier phase dropped) to
    u(r, z) = w0^2 / (w0^2 + i lambda z / pi) * exp(-r^2 / (w0^2 + i lambda z / pi)).

    Why this is a machine-precision test: with w0 = 8 px the Gaussian's spectrum exp(-pi^2 w0^2 f^2) is exp(-158)
    at the Nyquist frequency and the beam (w(50 um) = 1.03 w0, z_R = 195 um) is exp(-61) at the 128-px grid edge, so
    the DFT of the samples equals the continuous Fourier transform to double precision and nothing wraps; the
    paraxial kernel is then exact, error ~1e-14. The exact (angular-spectrum) kernel differs from the paraxial one by
    the phase 2 pi z/lambda (lambda f)^4 / 8 ~ 1e-8 rad at the beam's spectral width f ~ 1/(pi w0), so it matches the
    Fresnel solution to ~1e-8, and the bound 1e-6 leaves margin while failing for any real error (a wrong sign,
    factor 2 or half-bin shift gives O(1e-2) or more).
    """
    n, w0 = 128, 8 * DX
    y = (np.arange(n) - n // 2) * DX
    r2 = y[:, None] ** 2 + y[None, :] ** 2
    u0 = torch.from_numpy(np.exp(-r2 / w0**2).astype(np.complex128))
    q = w0**2 + 1j * LAM * z / math.pi
    expected = w0**2 / q * np.exp(-r2 / q)
    got = Propagator((n, n), z, LAM, DX, kind=kind).forward(u0).numpy()
    err = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert err < tol, err


@pytest.mark.parametrize("kind", ["exact", "paraxial"])
def test_propagator_unitary_and_adjoint(kind):
    P = Propagator((48, 40), 20e-6, LAM, DX, kind=kind)
    x, y = _cfield((3, 48, 40), 1), _cfield((3, 48, 40), 2)
    px = P.forward(x)
    e_in, e_out = float(torch.sum(x.abs() ** 2)), float(torch.sum(px.abs() ** 2))
    assert abs(e_out - e_in) / e_in < 1e-12
    lhs, rhs = _inner(px, y), _inner(x, P.adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-12
    # adjoint is the inverse here (unitary), and equals propagation by -z
    assert torch.allclose(P.adjoint(px), x, atol=1e-12, rtol=0)
    assert torch.allclose(P.adjoint(y), Propagator((48, 40), -20e-6, LAM, DX, kind=kind).forward(y), atol=1e-12)


def test_evanescent_band_is_zero_and_adjoint_still_exact():
    # a pixel of 0.04 nm at 12 keV: lambda * f_nyquist = 1.29 > 1, so corners of the grid are evanescent
    H = transfer_function((32, 32), 1e-9, LAM, 0.04e-9, dtype=torch.complex128)
    fy, fx = spatial_frequencies((32, 32), 0.04e-9)
    evanescent = (LAM**2) * (fy**2 + fx**2) >= 1
    assert bool(evanescent.any()) and bool((H[evanescent] == 0).all())
    assert torch.allclose(H[~evanescent].abs(), torch.ones(int((~evanescent).sum()), dtype=torch.float64))
    P = Propagator((32, 32), 1e-9, LAM, 0.04e-9)
    x, y = _cfield((32, 32), 3), _cfield((32, 32), 4)
    lhs, rhs = _inner(P.forward(x), y), _inner(x, P.adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-12


@pytest.mark.parametrize("kind", ["exact", "paraxial"])
def test_propagator_semigroup(kind):
    x = _cfield((64, 64), 5)
    p1, p2 = Propagator((64, 64), 7e-6, LAM, DX, kind), Propagator((64, 64), 13e-6, LAM, DX, kind)
    p12 = Propagator((64, 64), 20e-6, LAM, DX, kind)
    a, b = p1.forward(p2.forward(x)), p12.forward(x)
    assert float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)) < 1e-12


def test_centred_beam_stays_centred():
    """A Gaussian centred on pixel (n/2, n/2) keeps its centroid there (a half-bin frequency shift would move it by
    lambda z / (2 FOV) = 0.1 px per 50 um). The 128-px grid keeps the spread beam (w = 12.5 px at 200 um) below
    exp(-50) at its edge, so wrap-around does not bias the centroid."""
    n = 128
    idx = np.arange(n) - n // 2
    u0 = np.exp(-(idx[:, None] ** 2 + (idx[None, :] / 1.5) ** 2) / 6.0**2).astype(np.complex128)
    u = torch.from_numpy(u0)
    P = Propagator((n, n), 50e-6, LAM, DX)
    for _ in range(4):  # 200 um in all
        u = P.forward(u)
        inten = (u.abs() ** 2).numpy()
        cy = float((inten.sum(1) * np.arange(n)).sum() / inten.sum())
        cx = float((inten.sum(0) * np.arange(n)).sum() / inten.sum())
        assert abs(cy - n // 2) < 1e-6 and abs(cx - n // 2) < 1e-6


def test_paraxial_close_to_exact_at_small_angles():
    x = _cfield((64, 64), 6)
    a = Propagator((64, 64), 20e-6, LAM, DX, "exact").forward(x)
    b = Propagator((64, 64), 20e-6, LAM, DX, "paraxial").forward(x)
    # the quartic term 2 pi z/lambda (lambda f_max)^4 / 8 = 3.8e-4 rad at the Nyquist corner
    assert float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)) < 4e-4


def test_carrier_phase_option():
    z = 3.3e-6
    H0 = transfer_function((16, 16), z, LAM, DX, dtype=torch.complex128)
    H1 = transfer_function((16, 16), z, LAM, DX, dtype=torch.complex128, include_carrier_phase=True)
    fy, fx = spatial_frequencies((16, 16), DX)
    textbook = torch.exp(1j * 2 * math.pi * z / LAM * torch.sqrt(1 - LAM**2 * (fy**2 + fx**2)))
    # the textbook formula loses ~ulp(k z) = 3e-11 rad at k z = 2e5 rad
    assert torch.allclose(H1, textbook, atol=1e-9, rtol=0)
    ratio = H1 / H0
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio), atol=1e-12)


def test_transfer_function_cache_and_dtypes():
    before = transfer_function_cache_info().hits
    a = transfer_function((20, 20), 1e-6, LAM, DX)
    b = transfer_function((20, 20), 1e-6, LAM, DX)
    assert a is b and transfer_function_cache_info().hits == before + 1
    assert a.dtype == torch.complex64
    P = Propagator((20, 20), 1e-6, LAM, DX)
    assert P.forward(torch.ones(20, 20, dtype=torch.complex64)).dtype == torch.complex64
    assert P.forward(torch.ones(20, 20, dtype=torch.complex128)).dtype == torch.complex128
    with pytest.raises(ValueError, match="shape"):
        P.forward(torch.ones(10, 20, dtype=torch.complex64))


def test_far_field_ortho_centred_and_adjoint():
    x, y = _cfield((2, 16, 12), 7), _cfield((2, 16, 12), 8)
    X = far_field(x)
    assert float(torch.sum(X.abs() ** 2)) == pytest.approx(float(torch.sum(x.abs() ** 2)), rel=1e-13)
    dc = far_field(torch.ones(16, 12, dtype=torch.complex128))
    assert abs(dc[8, 6]) == pytest.approx(math.sqrt(16 * 12)) and float(dc.abs().sum()) == pytest.approx(
        math.sqrt(16 * 12))
    lhs, rhs = _inner(X, y), _inner(x, far_field_adjoint(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-12
    assert torch.allclose(far_field_adjoint(X), x, atol=1e-12)


def test_propagation_is_differentiable():
    x = _cfield((8, 8), 9).requires_grad_(True)
    P = Propagator((8, 8), 5e-6, LAM, DX)
    assert torch.autograd.gradcheck(lambda t: P.forward(t).abs() ** 2, (x,))
