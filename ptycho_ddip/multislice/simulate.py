"""Simulated multislice ptychography datasets (with XRF maps) from the phantoms (two or three slices, equally spaced).

The data are Poisson counts of exactly the documented forward model (:mod:`.forward`, DESIGN.md section 2) applied to
the ground-truth object, evaluated in complex128:

    O_s = transmission(thickness_s, material_s, energy)         (:func:`.materials.transmission`)
    I_j = |fftshift(fft2(exit wave_j, norm="ortho"))|^2,  counts_j ~ Poisson(I_j)

with a probe normalised to ``dose`` photons per position. Simulated XRF maps, one per phantom element (Au for the
slice-1 material Au, Ni for the slice-2 material NiO), are in ug/cm^2 on the object grid:

    ground_truth_xrf[e] = projected areal mass of element e                            (no blur, no noise)
    xrf[e]              = Poisson(c * (areal mass (*) |P_s|^2 / sum |P_s|^2)) / c

where P_s is the true probe propagated (in vacuum) to the element's slice, (*) is a zero-padded convolution (the XRF
signal of a scan position is excited by the whole beam, so the map has the probe's resolution) and c sets the count
level so that the brightest pixel of each map collects ``xrf_counts`` counts. An element present in several slices
(NiO on two slices of ``"litho-cell-nio"``) gets one map, the sum over those slices.

Everything is seeded by ``seed`` (phantom, scan jitter, diffraction noise and XRF noise draw from independent
streams), and nothing touches global random state.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..phantoms import PHANTOMS, make_phantom
from . import _options as opt
from .forward import MultisliceForward
from .materials import element_areal_density, transmission
from .physics import depth_of_field_m, wavelength_m
from .probe import focused_probe, gaussian_probe, supplied_probe
from .propagation import KINDS, Propagator

PROBES = ("gaussian", "focused", "supplied")
SCANS = ("raster", "spiral")


@dataclass
class SimulationOptions:
    """Options of :func:`simulate` (validated on construction; :meth:`from_dict` rejects unknown keys).

    Attributes
    ----------
    phantom : one of :data:`ptycho_ddip.phantoms.PHANTOMS` (:func:`ptycho_ddip.phantoms.make_phantom`): ``"au-nio"``,
        ``"zp-nio"``, ``"litho-cell"``, ``"cell-litho"`` (two slices) or ``"litho-cell-nio"`` (three slices).
    shape : (H, W) object size in pixels.
    pixel_size_m : object pixel size (m); the detector is assumed to match it (pixel = lambda z / (N p_det)).
    energy_ev : photon energy (eV), 5-30 keV.
    spacing_m : slice spacing in metres (between consecutive slices); or
    spacing_dof : slice spacing in units of the depth of field 5.4 dr^2 / lambda (default 3.5 when neither given).
    dof_resolution_m : the dr of the DOF (default: ``pixel_size_m``).
    propagation : ``"exact"`` or ``"paraxial"``.
    probe : ``"focused"`` (zone plate, defocused), ``"gaussian"`` or ``"supplied"`` (pass ``probe_array``).
    probe_shape : (h, w) probe window = detector size, pixels.
    probe_fwhm_m : intensity FWHM of the Gaussian probe (m).
    outer_zone_width_m, central_stop, defocus_m : focused-probe parameters (see :func:`.probe.focused_probe`).
    scan : ``"raster"`` (centred grid) or ``"spiral"`` (Fermat spiral about the object centre).
    step_px : scan step (raster) or mean point spacing (spiral), pixels.
    jitter_px : seeded uniform jitter in [-jitter, jitter] added to every position (gives fractional positions).
    dose : photons per scan position (sum |P|^2).
    poisson : draw Poisson counts (False stores the noise-free intensities).
    xrf_counts : counts in the brightest pixel of each XRF map (sets its Poisson noise; 0 = no XRF noise).
    seed : seed of the phantom and of all noise.
    """

    phantom: str = "au-nio"
    shape: tuple = (128, 128)
    pixel_size_m: float = 10e-9
    energy_ev: float = 12000.0
    spacing_m: float | None = None
    spacing_dof: float | None = None
    dof_resolution_m: float | None = None
    propagation: str = "exact"
    probe: str = "focused"
    probe_shape: tuple = (64, 64)
    probe_fwhm_m: float = 150e-9
    outer_zone_width_m: float = 20e-9
    central_stop: float = 0.4
    defocus_m: float = 30e-6
    scan: str = "raster"
    step_px: float = 4.0
    jitter_px: float = 0.0
    dose: float = 1e6
    poisson: bool = True
    xrf_counts: float = 1000.0
    seed: int = 0

    def __post_init__(self) -> None:
        opt.check_choice("phantom", self.phantom, PHANTOMS)
        self.shape = _pair("shape", self.shape, 32)
        self.probe_shape = _pair("probe_shape", self.probe_shape, 4)
        if self.probe_shape[0] > self.shape[0] or self.probe_shape[1] > self.shape[1]:
            raise opt.OptionsError(f"probe_shape {self.probe_shape} is larger than the object shape {self.shape}")
        for name in ("pixel_size_m", "energy_ev", "probe_fwhm_m", "outer_zone_width_m", "step_px", "dose"):
            opt.check_positive(name, getattr(self, name))
        if not 5000.0 <= self.energy_ev <= 30000.0:
            raise opt.OptionsError(f"option energy_ev={self.energy_ev!r} is outside the materials table (5-30 keV)")
        opt.check_positive("spacing_m", self.spacing_m, allow_none=True)
        opt.check_positive("spacing_dof", self.spacing_dof, allow_none=True)
        opt.check_positive("dof_resolution_m", self.dof_resolution_m, allow_none=True)
        if self.spacing_m is not None and self.spacing_dof is not None:
            raise opt.OptionsError("give either spacing_m or spacing_dof, not both")
        opt.check_choice("propagation", self.propagation, KINDS)
        opt.check_choice("probe", self.probe, PROBES)
        opt.check_choice("scan", self.scan, SCANS)
        opt.check_positive("jitter_px", self.jitter_px, allow_zero=True)
        opt.check_positive("xrf_counts", self.xrf_counts, allow_zero=True)
        opt.check_bool("poisson", self.poisson)
        if not (isinstance(self.defocus_m, (int, float)) and math.isfinite(self.defocus_m)):
            raise opt.OptionsError(f"option defocus_m must be a finite number (m), got {self.defocus_m!r}")
        if not 0.0 <= self.central_stop < 1.0:
            raise opt.OptionsError(f"option central_stop must be in [0, 1), got {self.central_stop!r}")
        opt.check_int("seed", self.seed, minimum=0)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any] | None = None, **overrides: Any) -> "SimulationOptions":
        """From a dict (e.g. parsed JSON) plus overrides; unknown keys raise :class:`OptionsError`."""
        return opt.from_mapping(cls, mapping, **overrides)

    def to_dict(self) -> dict:
        return opt.to_dict(self)

    @property
    def wavelength_m(self) -> float:
        return wavelength_m(self.energy_ev)

    @property
    def depth_of_field_m(self) -> float:
        return depth_of_field_m(self.dof_resolution_m or self.pixel_size_m, self.wavelength_m)

    @property
    def slice_spacing_m(self) -> float:
        """The slice spacing in metres (``spacing_m``, or ``spacing_dof`` x DOF, default 3.5 DOF)."""
        if self.spacing_m is not None:
            return float(self.spacing_m)
        return float(3.5 if self.spacing_dof is None else self.spacing_dof) * self.depth_of_field_m


def _pair(name: str, value: Any, minimum: int) -> tuple:
    try:
        pair = tuple(int(v) for v in value)
        ok = len(pair) == 2 and all(int(v) == v for v in value) and min(pair) >= minimum
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise opt.OptionsError(f"option {name} must be two integers >= {minimum} (pixels), got {value!r}")
    return pair


# ------------------------------------------------------------------------------------------------------ pieces
def scan_positions(options: SimulationOptions) -> np.ndarray:
    """Scan positions (n, 2) float64, (y, x) of the probe window's top-left corner, all inside the object."""
    H, W = options.shape
    h, w = options.probe_shape
    span = np.array([H - h, W - w], dtype=np.float64)
    step = float(options.step_px)
    if options.scan == "raster":
        axes = []
        for s in span:
            n = int(math.floor(s / step)) + 1
            start = (s - (n - 1) * step) / 2.0
            axes.append(start + step * np.arange(n))
        yy, xx = np.meshgrid(axes[0], axes[1], indexing="ij")
        pos = np.stack([yy.ravel(), xx.ravel()], axis=1)
    else:
        centre = span / 2.0
        c = step / math.sqrt(math.pi)  # Fermat spiral r = c sqrt(k): one point per pi c^2 = step^2 of area
        golden = math.pi * (3.0 - math.sqrt(5.0))
        n_max = int(4 * (span[0] + step) * (span[1] + step) / step**2) + 1
        k = np.arange(n_max)
        r, theta = c * np.sqrt(k), k * golden
        pos = centre + np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
        pos = pos[np.all((pos >= 0) & (pos <= span), axis=1)]
    if options.jitter_px > 0:
        rng = np.random.default_rng([options.seed, 1])
        pos = np.clip(pos + rng.uniform(-options.jitter_px, options.jitter_px, pos.shape), 0.0, span)
    return pos


def make_probe(options: SimulationOptions, probe_array=None) -> torch.Tensor:
    """The true probe (complex128, ``probe_shape``) normalised to ``dose`` photons."""
    if options.probe == "gaussian":
        return gaussian_probe(options.probe_shape, options.probe_fwhm_m, options.pixel_size_m, options.dose,
                              dtype=torch.complex128)
    if options.probe == "focused":
        return focused_probe(options.probe_shape, options.pixel_size_m, options.wavelength_m,
                             options.outer_zone_width_m, options.central_stop, options.defocus_m, options.dose,
                             dtype=torch.complex128)
    if probe_array is None:
        raise opt.OptionsError("probe='supplied' needs probe_array=<complex (h, w) array>")
    return supplied_probe(probe_array, options.probe_shape, options.dose, dtype=torch.complex128)


def ground_truth_object(options: SimulationOptions):
    """(phantom, complex128 transmission (n_slices, H, W))."""
    ph = make_phantom(options.phantom, options.shape, seed=options.seed, pixel_size_m=options.pixel_size_m)
    obj = np.stack([transmission(t, m, options.energy_ev) for t, m in zip(ph.thickness_m, ph.materials)])
    return ph, obj


def _blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Zero-padded linear convolution of ``image`` with a kernel centred on pixel (h // 2, w // 2)."""
    H, W = image.shape
    h, w = kernel.shape
    shape = (H + h, W + w)
    k = np.zeros(shape)
    k[:h, :w] = kernel
    k = np.roll(k, (-(h // 2), -(w // 2)), axis=(0, 1))
    out = np.fft.ifft2(np.fft.fft2(image, s=shape) * np.fft.fft2(k)).real[:H, :W]
    return np.clip(out, 0.0, None)


def simulate_xrf(phantom, probe: torch.Tensor, slice_pos_m: np.ndarray, options: SimulationOptions):
    """(measured, true) XRF maps, element -> (H, W) float64 in ug/cm^2 (see the module docstring)."""
    rng = np.random.default_rng([options.seed, 3])
    measured, true = {}, {}
    for s, (thick, material, element) in enumerate(zip(phantom.thickness_m, phantom.materials, phantom.elements)):
        amount = element_areal_density(thick, material, element)
        dz = float(slice_pos_m[s] - slice_pos_m[0])
        p = probe if dz == 0 else Propagator(options.probe_shape, dz, options.wavelength_m, options.pixel_size_m,
                                             options.propagation).forward(probe)
        kernel = (p.abs() ** 2).numpy()
        measured[element] = measured.get(element, 0.0) + _blur(amount, kernel / kernel.sum())
        true[element] = true.get(element, 0.0) + amount
    for element in sorted(measured):
        blurred = measured[element]
        peak = float(blurred.max())
        if options.xrf_counts > 0 and peak > 0:
            scale = options.xrf_counts / peak
            measured[element] = rng.poisson(blurred * scale) / scale
    return measured, true


def simulate(options: SimulationOptions | Mapping[str, Any] | None = None, *, probe_array=None,
             **overrides: Any):
    """Simulate a multislice ptychography dataset with XRF maps (slices at 0, spacing, 2 spacing, ...).

    Parameters
    ----------
    options : :class:`SimulationOptions`, a dict of its fields, or None (defaults); ``overrides`` are applied on top
        (``simulate(shape=(64, 64), spacing_dof=0.15, seed=1)``).
    probe_array : complex (h, w) array for ``probe="supplied"``.

    Returns
    -------
    ptycho_ddip.io.DiffractionDataset with intensities (Poisson counts, float32), energy, pixel size, positions,
    slice positions [0, spacing, ...], the true probe, the object shape, the ground-truth object and XRF maps.

    Examples
    --------
    >>> ds = simulate(shape=(64, 64), probe_shape=(32, 32), probe="gaussian", probe_fwhm_m=80e-9, step_px=8)
    >>> ds.intensities.shape, ds.ground_truth_object.shape, sorted(ds.xrf)
    ((25, 32, 32), (2, 64, 64), ['Au', 'Ni'])
    """
    from ..io import DiffractionDataset

    if isinstance(options, SimulationOptions):
        options = options.to_dict()
    options = SimulationOptions.from_dict(options, **overrides)
    phantom, obj = ground_truth_object(options)
    probe = make_probe(options, probe_array)
    slice_pos = options.slice_spacing_m * np.arange(obj.shape[0], dtype=np.float64)
    positions = scan_positions(options)
    fwd = MultisliceForward(options.probe_shape, slice_pos, options.wavelength_m, options.pixel_size_m,
                            kind=options.propagation)
    obj_t = torch.from_numpy(obj)
    with torch.no_grad():
        chunks = [fwd.intensities(obj_t, probe, positions[i:i + 256]).numpy()
                  for i in range(0, positions.shape[0], 256)]
    clean = np.concatenate(chunks)
    data = np.random.default_rng([options.seed, 2]).poisson(clean) if options.poisson else clean
    xrf, xrf_true = simulate_xrf(phantom, probe, slice_pos, options)
    return DiffractionDataset(
        intensities=data.astype(np.float32), energy_ev=options.energy_ev, pixel_size_m=options.pixel_size_m,
        positions_px=positions, slice_pos_m=slice_pos, free_prop_m=math.inf, probe=probe.numpy(),
        object_shape=options.shape, ground_truth_object=obj, xrf=xrf, ground_truth_xrf=xrf_true,
        source="")


def simulate_to_file(path: str | os.PathLike, options: SimulationOptions | Mapping[str, Any] | None = None,
                     overwrite: bool = False, **overrides: Any):
    """Simulate and write an Adorym-compatible HDF5 dataset (:func:`ptycho_ddip.io.write_dataset`).

    The output path is checked before anything is computed; nothing is written on any error. Returns the dataset.
    """
    from ..io import check_output_path, write_dataset

    check_output_path(path, overwrite)
    ds = simulate(options, **overrides)
    write_dataset(path, ds, overwrite=overwrite)
    return ds
