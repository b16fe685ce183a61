"""Every linear operator of the package, through one test: <A x, y> = <x, A* y> (adjointness, float64) and, where the
operator is unitary, ||A x|| = ||x|| (energy). Operators: the angular-spectrum propagator (exact and paraxial, with
an evanescent band), the far field, the crosstalk mixing M(k) and its inverse U(k) = M(k)^-1 acting on spectra
(both models). Real-space mixing of images is a reflect-boundary convolution, whose adjoint is not a product in
Fourier space; its equivalence with scipy's convolution is tested in tests/test_mixing.py, its inverse here."""
import numpy as np
import pytest
import torch

from ptycho_ddip.multislice.propagation import Propagator, far_field, far_field_adjoint
from ptycho_ddip.separation.mixing import Mixing, _apply, apply_mixing, apply_unmixing

LAM, DX = 1.0332e-10, 1e-8


def _field(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                         torch.randn(shape, generator=g, dtype=torch.float64))


def _inner(a, b):
    return complex(torch.sum(a * b.conj()))


def _mixing(model: str, n: int = 3) -> Mixing:
    rng = np.random.default_rng(7)
    if model == "direct":
        return Mixing(("direct",) * n, (1.0, 3.0), 0.3 * rng.standard_normal((n, n, 3)), model="direct")
    return Mixing(("lowpass",) + ("highpass",) * (n - 1), (1.0, 3.0), 0.3 * rng.standard_normal((n, n, 2)))


def _spectral(matrix):
    """(forward, adjoint) of the per-frequency matrix product s -> M(k) s on spectra (N, h, w)."""
    m = matrix.to(torch.complex128)
    return (lambda s: _apply(m, s)), (lambda s: _apply(m.conj().transpose(0, 1), s))


def _operators():
    shape = (36, 40)
    wide = Propagator(shape, 3e-3, LAM, 2e-10)  # a pixel below the wavelength: an evanescent band exists
    ops = {
        "propagator exact": (Propagator(shape, 20e-6, LAM, DX).forward, Propagator(shape, 20e-6, LAM, DX).adjoint,
                             (2, *shape), True),
        "propagator paraxial": (Propagator(shape, 20e-6, LAM, DX, kind="paraxial").forward,
                                Propagator(shape, 20e-6, LAM, DX, kind="paraxial").adjoint, (2, *shape), True),
        "propagator with evanescent band": (wide.forward, wide.adjoint, (2, *shape), False),
        "far field": (far_field, far_field_adjoint, (2, *shape), True),
    }
    for model in ("ghost", "direct"):
        mix = _mixing(model)
        for name, matrix in (("mixing", mix.matrix((18, 20))), ("unmixing", mix.unmixing((18, 20)))):
            fwd, adj = _spectral(matrix)
            ops[f"{name} M(k) ({model} model)" if name == "mixing" else f"{name} U(k) ({model} model)"] = (
                fwd, adj, (3, *matrix.shape[-2:]), False)
    return ops


OPERATORS = _operators()


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjoint_and_energy(name):
    forward, adjoint, shape, unitary = OPERATORS[name]
    x, y = _field(shape, 1), _field(shape, 2)
    ax = forward(x)
    lhs, rhs = _inner(ax, y), _inner(x, adjoint(y))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0), (lhs, rhs)
    if unitary:
        e_in, e_out = float(torch.sum(x.abs() ** 2)), float(torch.sum(ax.abs() ** 2))
        assert abs(e_out - e_in) <= 1e-12 * e_in


@pytest.mark.parametrize("model", ["ghost", "direct"])
def test_the_unmixing_inverts_the_mixing_on_images(model):
    mix = _mixing(model)
    y = torch.as_tensor(np.random.default_rng(3).random((3, 18, 20)))
    back = apply_unmixing(apply_mixing(y, mix.matrix(y.shape[-2:])), mix.unmixing(y.shape[-2:]))
    np.testing.assert_allclose(back.numpy(), y.numpy(), atol=1e-10)
