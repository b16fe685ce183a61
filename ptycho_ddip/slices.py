"""Slices of a reconstructed object as the pipeline uses them: the scanned region, the real part of each slice that
is separated, and the object that seeds a second pass. Numpy only."""
from __future__ import annotations

import numpy as np

__all__ = ["scan_box", "crop", "within", "slice_part", "seed_object"]


def scan_box(positions: np.ndarray, probe: np.ndarray, shape, threshold: float = 0.1, min_size: int = 32) -> tuple:
    """Bounding box (y0, y1, x0, x1) of the scanned region: pixels whose summed probe intensity exceeds
    ``threshold`` of its maximum, grown symmetrically to at least ``min_size`` (clipped to ``shape``).

    >>> scan_box(np.array([[0.0, 0.0], [0.0, 8.0]]), np.ones((8, 8)), (40, 40))
    (0, 32, 0, 32)
    """
    from .multislice.xrf import illuminated_mask

    H, W = (int(v) for v in shape)
    mask = illuminated_mask(np.asarray(positions), np.asarray(probe), (H, W), threshold)
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return 0, H, 0, W
    box = []
    for lo, hi, n in ((int(ys[0]), int(ys[-1]) + 1, H), (int(xs[0]), int(xs[-1]) + 1, W)):
        m = min(min_size, n)
        if hi - lo < m:
            lo = max(0, min(lo - (m - (hi - lo)) // 2, n - m))
            hi = lo + m
        box += [lo, hi]
    return tuple(box)


def crop(stack: np.ndarray, box) -> np.ndarray:
    y0, y1, x0, x1 = box
    return stack[..., y0:y1, x0:x1]


def within(stack: np.ndarray, outer, inner) -> np.ndarray:
    """The part of ``stack`` (cropped to box ``outer``) that lies in box ``inner`` (inside ``outer``).

    >>> within(np.arange(16).reshape(1, 4, 4), (0, 4, 0, 4), (1, 3, 2, 4)).tolist()
    [[[6, 7], [10, 11]]]
    """
    (oy, oy1, ox, ox1), (y0, y1, x0, x1) = outer, inner
    if not (oy <= y0 <= y1 <= oy1 and ox <= x0 <= x1 <= ox1):
        raise ValueError(f"box {tuple(inner)} is not inside box {tuple(outer)}")
    return stack[..., y0 - oy:y1 - oy, x0 - ox:x1 - ox]


def slice_part(obj: np.ndarray, part: str, box=None) -> np.ndarray:
    """The real ``part`` of a complex (n_slices, H, W) object, float64.

    ``"phase"``: ``angle(O e^{-i c}) + c`` per slice, c the phase of the slice's mean inside ``box`` (whole slice
    when None), so that a global phase offset does not wrap at +/- pi; ``"magnitude"``: ``|O|``.
    """
    obj = np.asarray(obj)
    if part == "magnitude":
        return np.abs(obj).astype(np.float64)
    region = obj if box is None else crop(obj, box)
    c = np.angle(region.reshape(region.shape[0], -1).mean(axis=1))[:, None, None]
    return (np.angle(obj * np.exp(-1j * c)) + c).astype(np.float64)


def seed_object(pass1_object: np.ndarray, separated: np.ndarray, box, part: str = "phase") -> np.ndarray:
    """Initial guess of pass 2: pass 1's object with the separated ``part`` put back inside ``box``.

    ``part="phase"``: ``|O_1| exp(i phi)``, phi = the separated phase inside the box and pass 1's phase outside.
    ``part="magnitude"``: ``m exp(i angle(O_1))``, m = the separated magnitude (clipped at 1e-3) inside the box.
    Returns complex128 (n_slices, H, W).
    """
    obj = np.asarray(pass1_object).astype(np.complex128)
    y0, y1, x0, x1 = box
    if part == "phase":
        phase = slice_part(obj, "phase", box)
        phase[:, y0:y1, x0:x1] = separated
        return np.abs(obj) * np.exp(1j * phase)
    mag = np.abs(obj)
    mag[:, y0:y1, x0:x1] = np.maximum(separated, 1e-3)
    return mag * np.exp(1j * np.angle(obj))


# ------------------------------------------------------------------------------------------------ files
