"""Synthetic two-slice objects with ground truth, and crosstalk blends of them.

Two phantoms mimic the paper's samples:

* ``"au-nio"``: slice 1 holds small, strongly scattering, sharp-edged gold particles; slice 2 holds larger, weakly
  scattering NiO particles with smooth (spherical) edges.
* ``"zp-nio"``: slice 1 holds a patch of a zone-plate-like slanted line grating whose period varies across the patch
  (gold); slice 2 holds NiO particles.

Phantoms for the crosstalk benchmark (``benchmarks/crosstalk_matrix.py``), with stronger contrast between slices:

* ``"litho-cell"``: slice 1 is a strong lithographic pattern (line gratings of several periods and orientations,
  pads and elbows; 700 nm of gold, 0.78 rad at 12 keV) over a weak cellular slice 2 (a tessellation of cells with
  membranes, nuclei and granules; at most 270 nm of NiO, 0.15 rad at 12 keV).
* ``"cell-litho"``: the same two slices in the other order (the strong scatterer downstream).
* ``"litho-cell-nio"``: three slices: the lithographic pattern, the cells, and the NiO spheres of ``"au-nio"``.

Each phantom is returned as the projected *thickness* (metres) of its material in each slice, so the multislice
simulator can turn it into complex transmissions at any photon energy, and the DDIP engine can use the normalised
maps directly as ground truth.

:func:`blend` makes crosstalk-contaminated pairs with the paper's forward model (eq. 2 of Du, Huang & Jacobsen 2021)::

    I_1 = alpha_1 * y_1 + (1 - alpha_1) * f_1(y_2)     (low-pass ghost of slice 2 on slice 1)
    I_2 = alpha_2 * f_2(y_1) + (1 - alpha_2) * y_2     (high-pass ghost of slice 1 on slice 2)

Everything is seeded; no global random state is touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

PHANTOMS = ("au-nio", "zp-nio", "litho-cell", "cell-litho", "litho-cell-nio")
#: phantoms made by :func:`_benchmark_phantom` (the others by :func:`make_phantom` itself)
_BENCHMARK_PHANTOMS = ("litho-cell", "cell-litho", "litho-cell-nio")


@dataclass(frozen=True)
class Phantom:
    """A multislice (two- or three-slice) ground-truth object.

    Attributes
    ----------
    name : phantom name (``"au-nio"`` or ``"zp-nio"``).
    thickness_m : (n_slices, H, W) float64, projected thickness of each slice's material in metres.
    materials : material of each slice, e.g. ``("Au", "NiO")``; also the XRF element of each slice
        (``"Au"`` and ``"Ni"``).
    pixel_size_m : lateral pixel size in metres that the thickness maps are drawn for.
    """

    name: str
    thickness_m: np.ndarray
    materials: tuple
    pixel_size_m: float
    elements: tuple = field(default=())

    @property
    def shape(self) -> tuple:
        return self.thickness_m.shape[1:]

    def normalized(self) -> np.ndarray:
        """Each slice scaled to [0, 1] (min-max per slice), float64 (n_slices, H, W)."""
        return np.stack([_minmax(s) for s in self.thickness_m])


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a, dtype=np.float64)


def _grid(shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)


def _particles(shape, rng, n, r_min, r_max, profile, margin=0.0, min_gap=1.0) -> np.ndarray:
    """Non-overlapping particles of unit peak height. profile: 'flat' (sharp disc) or 'sphere' (smooth cap)."""
    yy, xx = _grid(shape)
    out = np.zeros(shape)
    placed: list = []
    tries = 0
    while len(placed) < n and tries < 200 * n:
        tries += 1
        r = rng.uniform(r_min, r_max)
        cy = rng.uniform(margin + r, shape[0] - margin - r)
        cx = rng.uniform(margin + r, shape[1] - margin - r)
        if any(np.hypot(cy - py, cx - px) < r + pr + min_gap for py, px, pr in placed):
            continue
        placed.append((cy, cx, r))
        rho2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2
        if profile == "flat":
            # anti-aliased sharp disc: 1 inside, linear ramp over ~1 px at the edge
            out = np.maximum(out, np.clip(r - np.sqrt(rho2) * r + 0.5, 0.0, 1.0))
        else:
            out = np.maximum(out, np.sqrt(np.clip(1.0 - rho2, 0.0, None)))
    return out


def _zone_plate_patch(shape, rng, min_period_px=3.0, max_period_px=8.0) -> np.ndarray:
    """Binary zones of a Fresnel zone plate whose centre lies outside the field: slanted, chirped lines.

    The local period of a zone plate at radius r is lambda f / r; the centre is placed so that the period runs from
    ``max_period_px`` to ``min_period_px`` across the patch, in a random slanted direction.
    """
    h, w = shape
    yy, xx = _grid(shape)
    size = float(max(h, w))
    # lambda*f chosen so that r0 = lf/max_period, r1 = lf/min_period and r1 - r0 = field diagonal
    diag = np.hypot(h, w)
    lf = diag / (1.0 / min_period_px - 1.0 / max_period_px)
    r0 = lf / max_period_px
    theta = rng.uniform(np.deg2rad(20), np.deg2rad(70))
    # centre sits at distance r0 (+ half a diagonal) from the field centre, outside the field
    cy = h / 2 - (r0 + diag / 2) * np.sin(theta)
    cx = w / 2 - (r0 + diag / 2) * np.cos(theta)
    r2 = (yy - cy) ** 2 + (xx - cx) ** 2
    zones = (np.floor(r2 / lf) % 2 == 0).astype(np.float64)
    # a patch: the grating fills a rounded rectangle covering ~70 % of the field, edges softened by 1 px
    my, mx = 0.15 * h, 0.15 * w
    inside = ((yy > my) & (yy < h - my) & (xx > mx) & (xx < w - mx)).astype(np.float64)
    inside = ndimage.gaussian_filter(inside, 1.0)
    del size
    return zones * inside


def make_phantom(
    name: str = "au-nio",
    shape: Sequence[int] = (128, 128),
    seed: int = 0,
    pixel_size_m: float = 10e-9,
) -> Phantom:
    """Make a seeded two-slice phantom.

    Parameters
    ----------
    name : ``"au-nio"`` or ``"zp-nio"``.
    shape : (H, W) in pixels; at least 32 x 32.
    seed : seed of the particle positions and sizes.
    pixel_size_m : pixel size in metres (stored with the phantom; feature sizes are in pixels).

    Returns
    -------
    Phantom with ``thickness_m`` (2, H, W): gold up to 300 nm on slice 1 (sharp), NiO up to 1 um on slice 2
    (smooth spheres).

    Examples
    --------
    >>> ph = make_phantom("au-nio", (64, 64), seed=1)
    >>> ph.thickness_m.shape
    (2, 64, 64)
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 32:
        raise ValueError(f"phantom shape must be (H, W) with H, W >= 32, got {shape}")
    if name not in PHANTOMS:
        raise ValueError(f"unknown phantom {name!r}; choose one of {PHANTOMS}")
    if name in _BENCHMARK_PHANTOMS:
        return _benchmark_phantom(name, shape, seed, float(pixel_size_m))
    rng = np.random.default_rng(seed)
    area = shape[0] * shape[1]
    scale = min(shape) / 128.0
    if name == "au-nio":
        s1 = _particles(shape, rng, n=max(4, int(area / 550)), r_min=1.5 * scale + 0.5, r_max=4.5 * scale + 1,
                        profile="flat", min_gap=2.0)
        t1 = 300e-9 * s1
    else:
        t1 = 300e-9 * _zone_plate_patch(shape, rng)
    s2 = _particles(shape, rng, n=max(3, int(area / 1400)), r_min=7 * scale + 1, r_max=16 * scale + 1,
                    profile="sphere", min_gap=1.0)
    s2 = ndimage.gaussian_filter(s2, 0.8)
    t2 = 1e-6 * s2
    return Phantom(name=name, thickness_m=np.stack([t1, t2]), materials=("Au", "NiO"),
                   pixel_size_m=float(pixel_size_m), elements=("Au", "Ni"))


# ----------------------------------------------------------------------------------------- benchmark phantoms

def _supersampled(shape, factor, draw) -> np.ndarray:
    """Anti-aliased binary pattern: ``draw(yy, xx)`` (a bool mask on pixel coordinates) evaluated on a grid
    ``factor`` times finer and block-averaged."""
    h, w = shape
    off = (np.arange(factor) + 0.5) / factor - 0.5
    yy = (np.arange(h)[:, None] + off[None, :]).ravel()
    xx = (np.arange(w)[:, None] + off[None, :]).ravel()
    fine = draw(yy[:, None], xx[None, :]).astype(np.float64)
    return fine.reshape(h, factor, w, factor).mean(axis=(1, 3))


def litho_pattern(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A lithographic test pattern in [0, 1]: a 3 x 3 layout of line gratings (periods 5-12 px, orientations 0, 45,
    90 and 135 degrees, duty 0.5), solid pads and L-shaped elbows, sharp (anti-aliased) edges.

    >>> p = litho_pattern((64, 64), seed=1)
    >>> p.shape, float(p.min()) >= 0.0, float(p.max()) <= 1.0
    ((64, 64), True, True)
    """
    h, w = (int(v) for v in shape)
    rng = np.random.default_rng([seed, 11])
    cells = []
    kinds = ["grating"] * 5 + ["pad", "elbow", "grating", "elbow"]
    rng.shuffle(kinds)
    for k, kind in enumerate(kinds):
        r, c = divmod(k, 3)
        y0, y1 = h * (r + 0.1) / 3, h * (r + 0.9) / 3
        x0, x1 = w * (c + 0.1) / 3, w * (c + 0.9) / 3
        period = rng.uniform(5.0, 12.0)
        angle = np.deg2rad(rng.choice([0.0, 45.0, 90.0, 135.0]))
        phase = rng.uniform(0, period)
        cells.append((kind, y0, y1, x0, x1, period, angle, phase))

    def draw(yy, xx):
        out = np.zeros((yy.shape[0], xx.shape[1]), dtype=bool)
        for kind, y0, y1, x0, x1, period, angle, phase in cells:
            box = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
            if kind == "grating":
                u = yy * np.sin(angle) + xx * np.cos(angle) + phase
                out |= box & (np.mod(u, period) < period / 2)
            elif kind == "pad":
                my, mx = (y1 - y0) * 0.2, (x1 - x0) * 0.2
                out |= (yy >= y0 + my) & (yy < y1 - my) & (xx >= x0 + mx) & (xx < x1 - mx)
            else:  # elbow: two orthogonal lines of width period / 2
                lw = period / 2
                out |= box & (((yy >= y1 - 2 * lw) & (yy < y1 - lw)) | ((xx >= x0 + lw) & (xx < x0 + 2 * lw)))
        return out

    return _supersampled((h, w), 4, draw)


def cell_pattern(shape: Sequence[int], seed: int = 0, cell_size_px: float = 22.0) -> np.ndarray:
    """A cellular pattern in [0, 1]: a Voronoi tessellation (cells about ``cell_size_px`` across) with cytoplasm
    (0.35), membranes (1.0, about 2 px wide), a smooth nucleus in most cells (up to 0.75) and small granules, blurred
    by 0.7 px.

    >>> p = cell_pattern((64, 64), seed=1)
    >>> p.shape, round(float(p.max()), 6)
    ((64, 64), 1.0)
    """
    h, w = (int(v) for v in shape)
    rng = np.random.default_rng([seed, 12])
    n = max(4, int(round(h * w / cell_size_px**2)))
    seeds = rng.uniform([-0.05 * h, -0.05 * w], [1.05 * h, 1.05 * w], size=(n, 2))
    yy, xx = _grid((h, w))
    d = np.sqrt((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2)
    nearest = np.argsort(d, axis=-1)[..., :2]
    label = nearest[..., 0]
    d1 = np.take_along_axis(d, nearest[..., :1], -1)[..., 0]
    d2 = np.take_along_axis(d, nearest[..., 1:], -1)[..., 0]
    sep = np.linalg.norm(seeds[nearest[..., 0]] - seeds[nearest[..., 1]], axis=-1)
    bisector = (d2**2 - d1**2) / (2.0 * np.maximum(sep, 1e-9))  # distance to the cell boundary, px
    wall = np.clip(1.5 - bisector, 0.0, 1.0)  # a membrane about 2 px wide
    out = 0.35 * np.ones((h, w))
    for k in range(n):
        if rng.random() < 0.8:
            cy, cx = seeds[k] + rng.normal(0, 1.5, 2)
            ry, rx = rng.uniform(0.15, 0.25, 2) * cell_size_px
            rho2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            nucleus = 0.4 * np.sqrt(np.clip(1.0 - rho2, 0.0, None)) * (label == k)
            out = out + nucleus
    for _ in range(int(n * 3)):
        gy, gx = rng.uniform(0, h), rng.uniform(0, w)
        out = out + 0.25 * np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * 0.8**2))
    out = np.maximum(out, wall)
    out = ndimage.gaussian_filter(out, 0.7)
    return out / out.max()


def _benchmark_phantom(name: str, shape: tuple, seed: int, pixel_size_m: float) -> Phantom:
    """The crosstalk-benchmark phantoms (see the module docstring)."""
    litho = 700e-9 * litho_pattern(shape, seed)
    cells = 270e-9 * cell_pattern(shape, seed, cell_size_px=22.0 * min(shape) / 128.0)
    if name == "litho-cell":
        return Phantom(name, np.stack([litho, cells]), ("Au", "NiO"), pixel_size_m, ("Au", "Ni"))
    if name == "cell-litho":
        return Phantom(name, np.stack([cells, litho]), ("NiO", "Au"), pixel_size_m, ("Ni", "Au"))
    spheres = make_phantom("au-nio", shape, seed, pixel_size_m).thickness_m[1]
    return Phantom(name, np.stack([litho, cells, spheres]), ("Au", "NiO", "NiO"), pixel_size_m, ("Au", "Ni", "Ni"))


# ----------------------------------------------------------------------------------------------- ghost filters

def ghost_filter(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """Parse a ghost-filter spec into a function of a 2-D array.

    Specs (widths in pixels):

    * ``"gauss:S"``: Gaussian low-pass with standard deviation S.
    * ``"box:N"``: N x N uniform (box) low-pass.
    * ``"dog:A,B"``: difference of Gaussians G_A - G_B (A < B), a band/high-pass.
    * ``"hp:S"``: high-pass ``x - G_S(x)``.
    * ``"laplace"``: five-point Laplacian (positive centre), the paper's initial high-pass kernel.
    * ``"none"``: identity (all-pass).
    """
    kind, _, arg = spec.partition(":")
    vals = [float(v) for v in arg.split(",") if v.strip()] if arg else []
    if kind == "gauss" and len(vals) == 1:
        return lambda x: ndimage.gaussian_filter(x, vals[0], mode="reflect")
    if kind == "box" and len(vals) == 1:
        return lambda x: ndimage.uniform_filter(x, int(vals[0]), mode="reflect")
    if kind == "dog" and len(vals) == 2:
        return lambda x: ndimage.gaussian_filter(x, vals[0]) - ndimage.gaussian_filter(x, vals[1])
    if kind == "hp" and len(vals) == 1:
        return lambda x: x - ndimage.gaussian_filter(x, vals[0])
    if kind == "laplace" and not vals:
        k = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float64)
        return lambda x: ndimage.convolve(x, k, mode="reflect")
    if kind == "none" and not vals:
        return lambda x: np.array(x, dtype=np.float64)
    raise ValueError(f"bad ghost filter spec {spec!r}: use gauss:S, box:N, dog:A,B, hp:S, laplace or none")


@dataclass(frozen=True)
class Blend:
    """A crosstalk-contaminated pair with everything needed to score a separation.

    Attributes
    ----------
    inputs : (2, H, W) the contaminated images I_1, I_2.
    truth : (2, H, W) the clean slices y_1, y_2 (normalised to [0, 1]).
    ghosts : (2, H, W) the ghost images f_1(y_2) and f_2(y_1) (before weighting), used by the ghost-to-signal metric.
    alpha : (2,) the paper-convention weights (alpha_1 on y_1, alpha_2 on the ghost f_2(y_1)).
    filters : the two ghost-filter specs.
    """

    inputs: np.ndarray
    truth: np.ndarray
    ghosts: np.ndarray
    alpha: tuple
    filters: tuple


def blend(
    truth: np.ndarray,
    alpha: Sequence[float] = (0.7, 0.3),
    filters: Sequence[str] = ("gauss:2", "dog:0.7,3"),
    noise: float = 0.0,
    seed: int = 0,
    ghost_gain: Sequence[float] = (1.0, 1.0),
) -> Blend:
    """Blend two clean slices with the paper's forward model.

    ``I_1 = a1 y1 + (1 - a1) g1 * f1(y2)`` and ``I_2 = a2 g2 * f2(y1) + (1 - a2) y2``, where ``g`` is
    ``ghost_gain`` (the high-pass ghost of a filter like ``dog`` is weak: gain rescales it so its standard deviation
    matches the source slice's, times ``ghost_gain``) and Gaussian noise of standard deviation ``noise`` is added.

    Parameters
    ----------
    truth : (2, H, W) clean slices; each is min-max normalised to [0, 1] first.
    alpha : (alpha_1, alpha_2) in the paper's convention.
    filters : ghost-filter specs (see :func:`ghost_filter`) for f_1 (applied to y_2) and f_2 (applied to y_1).
    noise : standard deviation of additive Gaussian noise (in units of the normalised slices).
    seed : seed of the noise.
    ghost_gain : extra factor on each ghost after its std is matched to its source's.

    Examples
    --------
    >>> ph = make_phantom("au-nio", (64, 64))
    >>> b = blend(ph.normalized())
    >>> b.inputs.shape
    (2, 64, 64)
    """
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3 or truth.shape[0] != 2:
        raise ValueError(f"blend needs truth of shape (2, H, W), got {truth.shape}")
    y = np.stack([_minmax(t) for t in truth])
    f1, f2 = (ghost_filter(s) for s in filters)
    ghosts = []
    for src, f, gain in ((y[1], f1, ghost_gain[0]), (y[0], f2, ghost_gain[1])):
        g = f(src)
        g = g - g.mean()
        sd = g.std()
        g = g * (gain * src.std() / sd) if sd > 0 else g
        ghosts.append(g)
    ghosts = np.stack(ghosts)
    a1, a2 = float(alpha[0]), float(alpha[1])
    inputs = np.stack([a1 * y[0] + (1 - a1) * ghosts[0], a2 * ghosts[1] + (1 - a2) * y[1]])
    if noise > 0:
        inputs = inputs + np.random.default_rng(seed).normal(0.0, noise, inputs.shape)
    return Blend(inputs=inputs, truth=y, ghosts=ghosts, alpha=(a1, a2), filters=tuple(filters))
