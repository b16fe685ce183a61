"""Free-space propagation: angular-spectrum and paraxial Fresnel transfer functions, and the far-field transform.

Conventions (DESIGN.md section 2): waves go as exp(+i k z); a field ``u`` sampled on a grid of pitch ``pixel_size_m``
is propagated by a distance ``z`` as ``ifft2(fft2(u) * H)``, with spatial frequencies from ``torch.fft.fftfreq``
(cycles per metre, DC at index 0, no half-bin shift, so a centred beam stays centred).

Transfer functions (lambda = wavelength, f^2 = fx^2 + fy^2)

* ``kind="exact"`` (angular spectrum):  H = exp(i 2 pi z / lambda * (sqrt(1 - (lambda f)^2) - 1))  for lambda f < 1,
  and H = 0 in the evanescent band lambda f >= 1 (those waves do not reach a plane a finite distance away).
* ``kind="paraxial"`` (Fresnel):        H = exp(-i pi lambda z f^2).

The constant carrier phase exp(i k z) is **dropped by default** from both kernels (``include_carrier_phase=False``):
it is one global phase per propagation step, invisible in any intensity, and keeping it costs precision: k z is
~1e6 rad for z = 20 um at 12 keV, where a float32 phase has an ulp of 0.06 rad. The exact kernel's phase is evaluated
in float64 in the cancellation-free form  sqrt(1 - q) - 1 = -q / (1 + sqrt(1 - q)),  q = (lambda f)^2, and only
then cast to the field's dtype. With ``include_carrier_phase=True`` the kernels are the textbook ones,
exp(i 2 pi z/lambda sqrt(1 - q)) and exp(i k z) exp(-i pi lambda z f^2). Either way the paraxial kernel is the
second-order expansion of the exact one.

Both kernels are unitary on the propagating band, so the adjoint of a propagation is the propagation with the complex
conjugate kernel (which equals the propagation by -z): no scaling factors. Kernels are cached per
(shape, distance, wavelength, pixel size, kind, carrier flag, dtype, device).

The far field is ``fftshift(fft2(u, norm="ortho"))``: energy is conserved (sum |U|^2 = sum |u|^2) and the DC
component sits at index (h // 2, w // 2), as a detector records it.

Everything works batched over leading dimensions, is differentiable, and runs on the device of its input.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

KINDS = ("exact", "paraxial")


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown propagation kind {kind!r}; choose one of {KINDS}")
    return kind


def _complex_dtype_for(t: torch.Tensor) -> torch.dtype:
    if t.is_complex():
        return t.dtype
    return torch.complex128 if t.dtype == torch.float64 else torch.complex64


def spatial_frequencies(shape: Sequence[int], pixel_size_m: float, dtype=torch.float64, device=None):
    """Spatial frequencies (cycles per metre) of an (h, w) grid: ``(fy[:, None], fx[None, :])`` from ``fftfreq``."""
    h, w = (int(s) for s in shape)
    fy = torch.fft.fftfreq(h, d=float(pixel_size_m), dtype=dtype, device=device)
    fx = torch.fft.fftfreq(w, d=float(pixel_size_m), dtype=dtype, device=device)
    return fy[:, None], fx[None, :]


@functools.lru_cache(maxsize=128)
def _kernel_cached(shape, distance_m, wavelength_m, pixel_size_m, kind, include_carrier_phase, dtype, device):
    # computed once in float64 on the CPU (identical on every device), then cast and moved
    fy, fx = spatial_frequencies(shape, pixel_size_m, dtype=torch.float64)
    f2 = fy**2 + fx**2
    if kind == "exact":
        q = (wavelength_m**2) * f2
        propagating = q < 1.0
        root = torch.sqrt(torch.clamp(1.0 - q, min=0.0))
        phase = -2.0 * math.pi * distance_m / wavelength_m * q / (1.0 + root)
        kernel = torch.polar(propagating.to(torch.float64), phase)
    else:
        kernel = torch.polar(torch.ones_like(f2), -math.pi * wavelength_m * distance_m * f2)
    if include_carrier_phase:
        turns = math.fmod(distance_m / wavelength_m, 1.0)  # exp(i k z) with k z reduced modulo 2 pi in float64
        kernel = kernel * complex(math.cos(2 * math.pi * turns), math.sin(2 * math.pi * turns))
    return kernel.to(dtype=dtype, device=device)


def transfer_function(
    shape: Sequence[int],
    distance_m: float,
    wavelength_m: float,
    pixel_size_m: float,
    kind: str = "exact",
    *,
    include_carrier_phase: bool = False,
    dtype: torch.dtype = torch.complex64,
    device=None,
) -> torch.Tensor:
    """Free-space transfer function H (h, w), DC at index (0, 0) (unshifted, to multiply ``fft2`` output).

    Parameters
    ----------
    shape : (h, w) grid size in pixels.
    distance_m : propagation distance in metres (negative propagates backwards).
    wavelength_m, pixel_size_m : metres.
    kind : ``"exact"`` (angular spectrum, evanescent band = 0) or ``"paraxial"`` (Fresnel).
    include_carrier_phase : multiply by exp(i k z) (see the module docstring; off by default).
    dtype : complex dtype of the result; device : where it lives.

    The result is cached and shared: do not modify it in place.

    Examples
    --------
    >>> H = transfer_function((64, 64), 10e-6, 1.0332e-10, 10e-9, dtype=torch.complex128)
    >>> bool(torch.allclose(H.abs(), torch.ones(64, 64, dtype=torch.float64)))
    True
    """
    _check_kind(kind)
    for name, v in (("distance_m", distance_m), ("wavelength_m", wavelength_m), ("pixel_size_m", pixel_size_m)):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if wavelength_m <= 0 or pixel_size_m <= 0:
        raise ValueError(f"wavelength_m and pixel_size_m must be > 0, got {wavelength_m!r}, {pixel_size_m!r}")
    if not dtype.is_complex:
        raise ValueError(f"transfer function dtype must be complex, got {dtype}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _kernel_cached(tuple(int(s) for s in shape), float(distance_m), float(wavelength_m), float(pixel_size_m),
                          kind, bool(include_carrier_phase), dtype, dev)


def clear_transfer_function_cache() -> None:
    """Empty the transfer-function cache (e.g. to free GPU memory)."""
    _kernel_cached.cache_clear()


def transfer_function_cache_info():
    """``functools.lru_cache`` statistics of the transfer-function cache."""
    return _kernel_cached.cache_info()


class Propagator:
    """Linear operator P: propagate a field by ``distance_m`` between two planes sampled on the same (h, w) grid.

    ``forward(u) = ifft2(fft2(u) * H)`` and ``adjoint(v) = ifft2(fft2(v) * conj(H))`` over the last two axes, for
    any leading batch shape. The kernel is fetched from the cache for the field's dtype and device, so one
    Propagator serves complex64/complex128 and CPU/CUDA inputs alike.

    Examples
    --------
    >>> P = Propagator((32, 32), 5e-6, 1.0332e-10, 10e-9)
    >>> u = torch.ones(4, 32, 32, dtype=torch.complex64)
    >>> P.forward(u).shape
    torch.Size([4, 32, 32])
    """

    def __init__(self, shape: Sequence[int], distance_m: float, wavelength_m: float, pixel_size_m: float,
                 kind: str = "exact", include_carrier_phase: bool = False):
        self.shape = tuple(int(s) for s in shape)
        self.distance_m = float(distance_m)
        self.wavelength_m = float(wavelength_m)
        self.pixel_size_m = float(pixel_size_m)
        self.kind = _check_kind(kind)
        self.include_carrier_phase = bool(include_carrier_phase)

    def __repr__(self) -> str:
        return (f"Propagator(shape={self.shape}, distance_m={self.distance_m:g}, wavelength_m={self.wavelength_m:g}, "
                f"pixel_size_m={self.pixel_size_m:g}, kind={self.kind!r})")

    def kernel(self, dtype: torch.dtype = torch.complex64, device=None) -> torch.Tensor:
        """The (cached) transfer function for a dtype and device."""
        return transfer_function(self.shape, self.distance_m, self.wavelength_m, self.pixel_size_m, self.kind,
                                 include_carrier_phase=self.include_carrier_phase, dtype=dtype, device=device)

    def _apply(self, field: torch.Tensor, conjugate: bool) -> torch.Tensor:
        if tuple(field.shape[-2:]) != self.shape:
            raise ValueError(f"field has shape {tuple(field.shape[-2:])} in its last two axes, the propagator "
                             f"was built for {self.shape}")
        field = field.to(_complex_dtype_for(field))
        h = self.kernel(field.dtype, field.device)
        return torch.fft.ifft2(torch.fft.fft2(field) * (h.conj() if conjugate else h))

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Propagate ``field`` (..., h, w) by ``distance_m``."""
        return self._apply(field, conjugate=False)

    def adjoint(self, field: torch.Tensor) -> torch.Tensor:
        """Adjoint P* (= back-propagation by -distance_m on the propagating band)."""
        return self._apply(field, conjugate=True)

    __call__ = forward


def far_field(field: torch.Tensor) -> torch.Tensor:
    """Far-field (Fraunhofer) wave of an exit wave (..., h, w): ``fftshift(fft2(u, norm="ortho"))``, DC at centre."""
    field = field.to(_complex_dtype_for(field))
    return torch.fft.fftshift(torch.fft.fft2(field, norm="ortho"), dim=(-2, -1))


def far_field_adjoint(wave: torch.Tensor) -> torch.Tensor:
    """Adjoint (and inverse) of :func:`far_field`: ``ifft2(ifftshift(U), norm="ortho")``."""
    wave = wave.to(_complex_dtype_for(wave))
    return torch.fft.ifft2(torch.fft.ifftshift(wave, dim=(-2, -1)), norm="ortho")
