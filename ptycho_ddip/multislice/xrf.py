"""XRF-seeded initial guess for multislice reconstruction (Huang et al. 2019, as described in Du, Huang & Jacobsen
2021, sections 1 and 3.2).

At small slice spacing (below ~ the depth of field) a random start yields slices that are nearly identical mixtures
of both planes. When each plane holds a different chemical element, its X-ray fluorescence (XRF) map tells where that
element is, at the (coarser) resolution of the probe. The seeding:

1. reconstruct the data with a **single slice** (projection approximation): phase phi_1 and log-amplitude a_1 hold
   the sum of all planes;
2. resample each element's XRF map m_e onto the object grid (bilinear; the map is assumed to cover the same field of
   view as the object array);
3. **scale** the maps into phase and log-amplitude by least squares inside the scanned region:
   phi_1 ~ c + sum_e s_e m_e and a_1 ~ c' + sum_e s'_e m_e. The fitted s_e is the phase per unit XRF signal
   (= -k delta / (density x mass fraction) for a calibrated map, but the fit needs no calibration, no knowledge of
   the material, and absorbs detector efficiency and self-absorption);
4. slice j of element e starts as exp(sum_{e on j} (s'_e + i s_e) m_e);
5. the element-free remainder (phi_1 - c - sum_e s_e m_e, and likewise for a_1), i.e. the single-slice image with
   the XRF elements' contribution subtracted, seeds the slices that no element maps to (split equally among them);
   if every slice has an element, the remainder is split equally among all slices.

Slice indices are 0-based: for the paper's ZP/NiO sample, ``xrf_elements={"Ni": 1}`` puts the Ni map on the second
(downstream) slice and the Ni-subtracted single-slice image on the first. Phases are taken from the phase-
parameterised single-slice reconstruction, so they are not wrapped; maps are not deconvolved, so sharp edges of the
element's features stay on the remainder slice (the residual crosstalk the paper discusses).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from scipy import ndimage


def resample_map(xrf_map, shape) -> np.ndarray:
    """Bilinear resampling of a 2-D map onto an (H, W) grid covering the same field of view."""
    m = np.asarray(xrf_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"an XRF map must be 2-D, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("an XRF map contains NaN or inf")
    if m.shape == tuple(shape):
        return m.copy()
    zoom = (shape[0] / m.shape[0], shape[1] / m.shape[1])
    out = ndimage.zoom(m, zoom, order=1, mode="nearest", grid_mode=True)
    return out[: shape[0], : shape[1]]


def fit_maps(image: np.ndarray, maps: list, mask: np.ndarray | None = None) -> tuple:
    """Least-squares fit image ~ c + sum_e s_e maps[e] inside ``mask``; returns (c, [s_e, ...])."""
    mask = np.ones(image.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    design = np.stack([np.ones(int(mask.sum()))] + [m[mask] for m in maps], axis=1)
    coef, *_ = np.linalg.lstsq(design, image[mask], rcond=None)
    return float(coef[0]), [float(c) for c in coef[1:]]


def xrf_seed(phase: np.ndarray, log_amplitude: np.ndarray, xrf_maps: Mapping[str, np.ndarray],
             xrf_elements: Mapping[str, int], n_slices: int, mask: np.ndarray | None = None) -> tuple:
    """Initial object (n_slices, H, W) complex128 from a single-slice image and XRF maps (see module docstring).

    Parameters
    ----------
    phase, log_amplitude : (H, W) unwrapped phase (rad) and log-amplitude of a single-slice reconstruction.
    xrf_maps : element -> 2-D XRF map (any units and grid covering the same field of view).
    xrf_elements : element -> 0-based slice index.
    n_slices : number of slices of the seed.
    mask : (H, W) bool, where to fit the scales (the scanned region); default everywhere.

    Returns
    -------
    (object, info) with info = {"xrf_phase_scale": per-element phase scale (rad per map unit, in xrf_elements
    order), "xrf_logamp_scale": likewise for the log-amplitude}.

    Examples
    --------
    >>> yy, xx = np.mgrid[:32, :32]
    >>> ni = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 20.0)
    >>> au = ((yy - 8) ** 2 + (xx - 8) ** 2 < 9).astype(float)
    >>> obj, info = xrf_seed(-0.3 * au - 0.5 * ni, np.zeros((32, 32)), {"Ni": ni}, {"Ni": 1}, 2)
    >>> round(float(info["xrf_phase_scale"][0]), 1), bool(np.allclose(np.angle(obj[1]), -0.5 * ni, atol=0.05))
    (-0.5, True)
    """
    H, W = phase.shape
    if not xrf_elements:
        raise ValueError("xrf_elements is empty: map at least one element to a slice, e.g. {'Ni': 1}")
    for element, s in xrf_elements.items():
        if element not in xrf_maps:
            raise ValueError(f"no XRF map for element {element!r}; the data have {sorted(xrf_maps)}")
        if not 0 <= int(s) < n_slices:
            raise ValueError(f"element {element!r} is mapped to slice {s}, but slices are 0..{n_slices - 1} "
                             f"(0-based)")
    elements = list(xrf_elements)
    maps = [resample_map(xrf_maps[e], (H, W)) for e in elements]
    c_phi, s_phi = fit_maps(phase, maps, mask)
    c_amp, s_amp = fit_maps(log_amplitude, maps, mask)
    phi = np.zeros((n_slices, H, W))
    amp = np.zeros((n_slices, H, W))
    rest_phi, rest_amp = phase - c_phi, log_amplitude - c_amp
    for e, m, sp, sa in zip(elements, maps, s_phi, s_amp):
        j = int(xrf_elements[e])
        phi[j] += sp * m
        amp[j] += sa * m
        rest_phi = rest_phi - sp * m
        rest_amp = rest_amp - sa * m
    free = [j for j in range(n_slices) if j not in set(int(v) for v in xrf_elements.values())] or list(
        range(n_slices))
    for j in free:
        phi[j] += rest_phi / len(free)
        amp[j] += rest_amp / len(free)
    info = {"xrf_phase_scale": np.asarray(s_phi), "xrf_logamp_scale": np.asarray(s_amp)}
    return np.exp(amp + 1j * phi), info


def illuminated_mask(positions: np.ndarray, probe: np.ndarray, shape, fraction: float = 0.1) -> np.ndarray:
    """Pixels whose summed probe intensity over the scan exceeds ``fraction`` of its maximum (the scanned region)."""
    cover = illumination(positions, probe, shape)
    return cover > fraction * cover.max()


def illumination(positions: np.ndarray, probe: np.ndarray, shape) -> np.ndarray:
    """Sum over positions of |probe|^2 placed at the integer part of each position, (H, W)."""
    inten = np.abs(np.asarray(probe)) ** 2
    h, w = inten.shape
    cover = np.zeros(tuple(shape))
    for y, x in np.floor(np.asarray(positions)).astype(int):
        cover[y:y + h, x:x + w] += inten
    return cover


def xrf_initial_object(dataset, options, slice_pos_m: np.ndarray, object_shape, reconstructor) -> tuple:
    """Run the single-slice reconstruction of step 1 and build the XRF seed (used by ``init="xrf"``).

    The single-slice run uses the same options with one slice at ``slice_pos_m[0]``, a constant start and
    ``options.xrf_epochs`` epochs, no checkpoints; ``reconstructor`` is the reconstructor class that runs it (passed
    in, so that this module does not import the reconstructor that imports it). Returns (object, info) as
    :func:`xrf_seed`, info also holding the single-slice object under ``"xrf_single_slice"``.
    """
    from ..atomic import InputError

    name = dataset.source or "dataset"
    missing = [e for e in options.xrf_elements if e not in dataset.xrf]
    if missing:
        raise InputError(f"{name}: init='xrf' needs XRF maps of {missing}, the data hold {sorted(dataset.xrf)}; "
                         f"add xrf/<element> maps or choose another init")
    bad = [e for e, s in options.xrf_elements.items() if s >= slice_pos_m.size]
    if bad:
        raise InputError(f"xrf_elements maps {bad} to slices beyond 0..{slice_pos_m.size - 1} (0-based indices)")
    single = dataclasses.replace(options, init="constant", n_slices=1, slice_pos_m=[float(slice_pos_m[0])],
                                 object_shape=tuple(object_shape), epochs=options.xrf_epochs, checkpoint_every=0,
                                 checkpoint_path=None, resume=False, optimize_probe=False, xrf_elements=None)
    rec = reconstructor(dataset, single)
    rec.run(progress=False)
    phase = rec.obj_b.detach().cpu().double().numpy()[0]
    log_amp = rec.obj_a.detach().cpu().double().numpy()[0]
    if options.parameterization == "complex":
        o = phase * 1j + log_amp  # (re, im) parameters
        phase, log_amp = np.angle(o), np.log(np.maximum(np.abs(o), 1e-12))
    probe = rec.probe().detach().cpu().numpy()
    mask = illuminated_mask(dataset.positions_px, probe, object_shape)
    try:
        obj, info = xrf_seed(phase, log_amp, dataset.xrf, options.xrf_elements, slice_pos_m.size, mask)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None
    info["xrf_single_slice"] = np.exp(log_amp + 1j * phase)
    info["xrf_seed"] = obj
    return obj, info
