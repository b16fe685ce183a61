"""The multislice forward model: probe x object patches at scan positions -> slices -> far-field intensities.

For scan position j with top-left corner r_j = (y_j, x_j) (float pixels, DESIGN.md section 2):

1. split r_j = n_j + d_j with n_j = floor(r_j) (integer) and d_j in [0, 1);
2. the object patch O_s[n_j : n_j + (h, w)] of every slice s is taken by one batched gather (no loop over positions);
3. the incident wave is the probe shifted by d_j in Fourier space, psi_0 = ifft2(fft2(P) exp(-2 pi i f . d_j)),
   i.e. psi_0(u) = P(u - d_j) with f from ``fftfreq`` (cycles per pixel): positive d_j moves the probe to larger
   indices within the patch, exactly where a probe at the fractional position r_j lies;
4. psi_{s} = Prop(dz_s)[psi_{s-1} * O_{s-1}] for the gaps dz_s = slice_pos_m[s] - slice_pos_m[s-1]; the exit wave is
   psi_exit = psi_{S-1} * O_{S-1} (the probe is the incident field at the first slice);
5. detector wave U_j = fftshift(fft2(psi_exit, norm="ortho")) (far field, DC at (h//2, w//2)); only when a finite
   ``free_prop_m`` is given is the exit wave instead propagated by that distance with the angular-spectrum kernel
   (near-field geometry, detector sampled at the object pixel size, no fftshift);
6. intensities I_j = |U_j|^2. With the ortho FFT, sum(I_j) = sum |psi_exit|^2, so a probe normalised to N photons
   gives N photons per position for a non-absorbing object.

For a fixed object, steps 3-5 are linear in the incident wave: :meth:`MultisliceForward.wave_forward` and
:meth:`MultisliceForward.wave_adjoint` expose that map A_O and its exact adjoint (<A x, y> = <x, A* y>).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .physics import slice_spacings_m
from .propagation import Propagator, far_field, far_field_adjoint


class PositionError(ValueError):
    """A scan position puts the probe window (partly) outside the object array."""


def _complex_dtype(*tensors: torch.Tensor) -> torch.dtype:
    double = any(t.dtype in (torch.complex128, torch.float64) for t in tensors)
    return torch.complex128 if double else torch.complex64


class MultisliceForward:
    """Multislice ptychography forward model (stateless apart from geometry; holds no object or probe).

    Parameters
    ----------
    probe_shape : (h, w) probe window = detector size in pixels.
    slice_pos_m : (n_slices,) axial positions of the slices in metres, strictly increasing; only differences matter.
    wavelength_m, pixel_size_m : metres.
    kind : ``"exact"`` (angular spectrum) or ``"paraxial"`` (Fresnel) propagation between slices.
    free_prop_m : ``math.inf`` (default) for far-field detection, or a finite distance for near-field detection.

    Examples
    --------
    >>> fwd = MultisliceForward((16, 16), [0.0, 5e-6], 1.0332e-10, 10e-9)
    >>> obj = torch.ones(2, 40, 40, dtype=torch.complex64)
    >>> probe = torch.ones(16, 16, dtype=torch.complex64)
    >>> fwd.intensities(obj, probe, torch.tensor([[0.0, 0.0], [3.5, 10.25]])).shape
    torch.Size([2, 16, 16])
    """

    def __init__(self, probe_shape: Sequence[int], slice_pos_m: Sequence[float], wavelength_m: float,
                 pixel_size_m: float, kind: str = "exact", free_prop_m: float = math.inf):
        self.probe_shape = tuple(int(s) for s in probe_shape)
        if len(self.probe_shape) != 2 or min(self.probe_shape) < 1:
            raise ValueError(f"probe_shape must be (h, w) with h, w >= 1, got {probe_shape!r}")
        self.slice_pos_m = np.asarray(slice_pos_m, dtype=np.float64).reshape(-1)
        self.slice_spacings_m = slice_spacings_m(self.slice_pos_m)
        self.wavelength_m = float(wavelength_m)
        self.pixel_size_m = float(pixel_size_m)
        self.kind = kind
        self.propagators = [Propagator(self.probe_shape, dz, self.wavelength_m, self.pixel_size_m, kind)
                            for dz in self.slice_spacings_m]
        free = float(free_prop_m)
        if math.isnan(free) or free <= 0:
            raise ValueError(f"free_prop_m must be > 0 or inf (far field), got {free_prop_m!r}")
        self.free_prop_m = free
        self.free_propagator = None if math.isinf(free) else Propagator(self.probe_shape, free, self.wavelength_m,
                                                                       self.pixel_size_m, kind)

    @property
    def n_slices(self) -> int:
        return int(self.slice_pos_m.size)

    def __repr__(self) -> str:
        return (f"MultisliceForward(probe_shape={self.probe_shape}, slice_pos_m={self.slice_pos_m.tolist()}, "
                f"wavelength_m={self.wavelength_m:g}, pixel_size_m={self.pixel_size_m:g}, kind={self.kind!r}, "
                f"free_prop_m={self.free_prop_m})")

    # ------------------------------------------------------------------------------------------------ positions
    @staticmethod
    def as_positions(positions, device=None) -> torch.Tensor:
        """Positions as a float64 (n, 2) tensor (y, x); float64 keeps the fractional part exact."""
        pos = torch.as_tensor(np.asarray(positions, dtype=np.float64) if not torch.is_tensor(positions) else positions)
        pos = pos.to(dtype=torch.float64, device=device)
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise PositionError(f"positions must have shape (n, 2) as (y, x) pixels, got {tuple(pos.shape)}")
        if not bool(torch.isfinite(pos).all()):
            raise PositionError("positions contain NaN or inf; fix the probe positions (metadata/probe_pos_px)")
        return pos

    def split_positions(self, positions: torch.Tensor):
        """(integer top-left corner (n, 2) int64, fractional part (n, 2) float64 in [0, 1))."""
        whole = torch.floor(positions)
        return whole.to(torch.int64), positions - whole

    def check_positions(self, positions, object_shape: Sequence[int]) -> None:
        """Raise :class:`PositionError` if any probe window leaves the (H, W) object array."""
        pos = self.as_positions(positions)
        whole, _ = self.split_positions(pos)
        H, W = (int(s) for s in object_shape)
        h, w = self.probe_shape
        bad = (whole[:, 0] < 0) | (whole[:, 1] < 0) | (whole[:, 0] + h > H) | (whole[:, 1] + w > W)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise PositionError(
                f"{int(bad.sum())} of {pos.shape[0]} scan positions put the {h}x{w} probe window outside the "
                f"{H}x{W} object (first: position {i} = {pos[i].tolist()}); positions are the window's top-left "
                f"corner (y, x) and need 0 <= floor(y) <= {H - h}, 0 <= floor(x) <= {W - w}: enlarge the object "
                f"or shift the positions")

    # --------------------------------------------------------------------------------------------- components
    def _gather_index(self, corners: torch.Tensor, width: int, device) -> torch.Tensor:
        h, w = self.probe_shape
        offsets = (torch.arange(h, device=device)[:, None] * width + torch.arange(w, device=device)[None, :])
        base = corners[:, 0].to(device) * width + corners[:, 1].to(device)
        return (base[:, None] + offsets.reshape(-1)[None, :]).reshape(-1)

    def extract_patches(self, obj: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
        """Object patches (n_slices, n, h, w) at integer top-left ``corners`` (n, 2), by one gather."""
        S, H, W = obj.shape
        index = self._gather_index(corners, W, obj.device)
        return torch.index_select(obj.reshape(S, H * W), 1, index).reshape(S, corners.shape[0], *self.probe_shape)

    def _patch_list(self, obj: torch.Tensor, corners: torch.Tensor) -> list:
        # one gather per slice: the backward pass then scatters into each (H, W) slice instead of zero-filling an
        # (n_slices, n, h, w) buffer per slice
        S, H, W = obj.shape
        index = self._gather_index(corners, W, obj.device)
        return [torch.index_select(o.reshape(H * W), 0, index).reshape(corners.shape[0], *self.probe_shape)
                for o in obj.unbind(0)]

    def shift_probe(self, probe: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        """Probe shifted by sub-pixel ``frac`` (n, 2) via a Fourier phase ramp: (n, h, w), psi(u) = P(u - frac)."""
        n = frac.shape[0]
        probe = probe.to(_complex_dtype(probe))
        if not bool((frac != 0).any()):
            return probe.expand(n, *self.probe_shape)
        real = torch.float64 if probe.dtype == torch.complex128 else torch.float32
        h, w = self.probe_shape
        fy = torch.fft.fftfreq(h, dtype=torch.float64, device=probe.device)
        fx = torch.fft.fftfreq(w, dtype=torch.float64, device=probe.device)
        frac = frac.to(device=probe.device, dtype=torch.float64)
        phase_y = (-2.0 * math.pi * frac[:, 0, None] * fy[None, :]).to(real)  # (n, h), separable ramp
        phase_x = (-2.0 * math.pi * frac[:, 1, None] * fx[None, :]).to(real)  # (n, w)
        ramp_y = torch.polar(torch.ones_like(phase_y), phase_y)[:, :, None]
        ramp_x = torch.polar(torch.ones_like(phase_x), phase_x)[:, None, :]
        return torch.fft.ifft2(torch.fft.fft2(probe) * ramp_y * ramp_x)

    def propagate_through(self, patches: torch.Tensor, incident: torch.Tensor) -> torch.Tensor:
        """Exit waves (n, h, w) of incident waves (n, h, w) through object patches (n_slices, n, h, w) (or a list of
        n_slices (n, h, w) patches); linear in ``incident``."""
        psi = incident
        for s, patch in enumerate(patches):
            psi = psi * patch
            if s < len(self.propagators):
                psi = self.propagators[s].forward(psi)
        return psi

    def propagate_through_adjoint(self, patches: torch.Tensor, exit_wave: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`propagate_through` in the incident wave (same patches)."""
        chi = exit_wave
        patches = list(patches)
        for s in reversed(range(len(patches))):
            if s < len(self.propagators):
                chi = self.propagators[s].adjoint(chi)
            chi = chi * patches[s].conj()
        return chi

    def detector_wave(self, exit_wave: torch.Tensor, centred: bool = True) -> torch.Tensor:
        """Complex wave at the detector: far field (DC centred) or free-space propagation by ``free_prop_m``.

        ``centred=False`` skips the far field's ``fftshift`` (DC at index (0, 0)); a reconstructor can compare
        such waves with ``ifftshift``-ed data and save one pass over the batch per evaluation.
        """
        if self.free_propagator is None:
            if centred:
                return far_field(exit_wave)
            return torch.fft.fft2(exit_wave, norm="ortho")
        return self.free_propagator.forward(exit_wave)

    def detector_wave_adjoint(self, wave: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`detector_wave`."""
        if self.free_propagator is None:
            return far_field_adjoint(wave)
        return self.free_propagator.adjoint(wave)

    # -------------------------------------------------------------------------------------------- linear part
    def wave_forward(self, patches: torch.Tensor, incident: torch.Tensor) -> torch.Tensor:
        """The linear map A_O: incident waves (n, h, w) -> detector waves (n, h, w) for fixed patches."""
        return self.detector_wave(self.propagate_through(patches, incident))

    def wave_adjoint(self, patches: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        """Adjoint A_O* of :meth:`wave_forward`: detector waves -> incident waves."""
        return self.propagate_through_adjoint(patches, self.detector_wave_adjoint(wave))

    # ----------------------------------------------------------------------------------------------- full map
    def _prepare(self, obj: torch.Tensor, probe: torch.Tensor, positions):
        if obj.ndim != 3 or obj.shape[0] != self.n_slices:
            raise ValueError(f"object must have shape ({self.n_slices}, H, W), got {tuple(obj.shape)}")
        if tuple(probe.shape) != self.probe_shape:
            raise ValueError(f"probe must have shape {self.probe_shape}, got {tuple(probe.shape)}")
        dtype = _complex_dtype(obj, probe)
        obj, probe = obj.to(dtype), probe.to(dtype=dtype, device=obj.device)
        pos = self.as_positions(positions)  # where they are given: checked on the CPU without a device sync
        self.check_positions(pos, obj.shape[1:])
        corners, frac = self.split_positions(pos)
        return obj, probe, corners, frac

    def exit_waves(self, obj: torch.Tensor, probe: torch.Tensor, positions) -> torch.Tensor:
        """Exit waves (n, h, w) for object (n_slices, H, W), probe (h, w) and positions (n, 2)."""
        obj, probe, corners, frac = self._prepare(obj, probe, positions)
        return self.propagate_through(self._patch_list(obj, corners), self.shift_probe(probe, frac))

    def detector_waves(self, obj: torch.Tensor, probe: torch.Tensor, positions, centred: bool = True
                       ) -> torch.Tensor:
        """Complex detector waves (n, h, w) (far field: DC at the centre unless ``centred=False``)."""
        return self.detector_wave(self.exit_waves(obj, probe, positions), centred)

    def intensities(self, obj: torch.Tensor, probe: torch.Tensor, positions) -> torch.Tensor:
        """Diffraction intensities |U|^2 (n, h, w), real, DC at the centre."""
        u = self.detector_waves(obj, probe, positions)
        return u.real**2 + u.imag**2

    forward = intensities
    __call__ = intensities
