"""In-loop depth regularisers of a multislice reconstruction (written from the published formulas).

Two peers' ways of keeping the slices of a multislice reconstruction apart, selected by
``ReconstructionOptions.depth_reg``:

* ``"kz"``, the **missing-wedge filter** (fold_slice, pty-chi, PtyRAD; Chen et al., Science 372, 826 (2021)). The
  slices' phase and log-amplitude, each a real stack x(z, y, x), are replaced every ``depth_reg_every`` epochs by
  F3^-1[ W F3[x] ] with the 3-D discrete Fourier transform F3 and

      W(kz, kr) = 1 - (2 / pi) arctan((beta |kz| / |kr|)^2),    kr = sqrt(ky^2 + kx^2),

  in grid units: kz in cycles per slice (``fftfreq(n_slices)``), ky, kx in cycles per pixel. beta is
  ``depth_reg_weight``. W = 1/2 on the cone |kz| = |kr| / beta: components whose depth frequency exceeds that are
  damped, those below pass. In physical units the cone's half-angle is theta = pixel_size / (beta * slice_spacing)
  radians (for a probe of semi-angle theta, beta = pixel_size / (theta * slice_spacing)), so beta ~ 0.1-1 at a few
  depths of field. At kr = 0: W = 0 for kz != 0 (the per-slice mean of phase and of log-amplitude is not measured
  by the data, only its sum over slices is, so the slices' means are equalised) and W = 1 at kz = kr = 0 (the sum is
  kept). A z-constant stack has only kz = 0 components and passes unchanged. For two slices, kz takes the values 0
  and -1/2: the mean of the slices is kept and their difference is multiplied by W(1/2, kr), i.e. the slices are
  averaged at lateral frequencies below |kr| ~ beta / 2. The filter assumes equally spaced slices (it uses the slice
  index, not the positions) and, like its peers, periodic boundaries.
* ``"zcorr"``, the **inter-slice correlation penalty** (the idea of Adorym's and the DDIP paper's exclusion terms):
  ``depth_reg_weight * sum_{i<j} rho(phi_i, phi_j)^2`` is added to the data loss of every minibatch, rho the Pearson
  correlation of the slices' phases over the scanned region (pixels whose summed probe intensity exceeds 10 % of its
  maximum). The square penalises positive and negative correlation alike (a high-pass ghost can anticorrelate).

Both act on the object only; the probe is not touched.
"""
from __future__ import annotations

import math

import torch

DEPTH_REGS = ("none", "kz", "zcorr")
#: depth_reg_weight when the option is left at None
DEFAULT_WEIGHTS = {"kz": 0.1, "zcorr": 1.0}


def kz_filter_weights(n_slices: int, shape, beta: float, dtype: torch.dtype = torch.float64,
                      device=None) -> torch.Tensor:
    """The missing-wedge filter W(kz, ky, kx) on the 3-D FFT grid, shape (n_slices, H, W), values in [0, 1].

    kz in cycles per slice, ky, kx in cycles per pixel (``torch.fft.fftfreq``); see the module docstring.

    Examples
    --------
    >>> w = kz_filter_weights(2, (4, 4), beta=1.0)
    >>> float(w[0, 0, 0]), float(w[1, 0, 0]), float(w[0, 2, 1])    # DC kept, z-varying DC removed, kz=0 kept
    (1.0, 0.0, 1.0)
    """
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    H, W = (int(s) for s in shape)
    kz = torch.fft.fftfreq(int(n_slices), dtype=torch.float64)
    ky = torch.fft.fftfreq(H, dtype=torch.float64)
    kx = torch.fft.fftfreq(W, dtype=torch.float64)
    kr2 = ky[:, None] ** 2 + kx[None, :] ** 2
    num = (float(beta) * kz[:, None, None]) ** 2
    # arctan((beta kz / kr)^2) = atan2((beta kz)^2, kr^2): pi/2 at kr = 0 < |kz|, and 0 at kz = kr = 0
    w = 1.0 - (2.0 / math.pi) * torch.atan2(num.expand(-1, H, W), kr2.expand(int(n_slices), -1, -1))
    return w.to(dtype=dtype, device=device)


def kz_filter(stack: torch.Tensor, beta: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the missing-wedge filter to a real stack (n_slices, H, W): real(F3^-1[W F3[stack]]).

    ``weights`` (from :func:`kz_filter_weights`) may be passed to avoid recomputing them.

    Examples
    --------
    >>> x = torch.ones(3, 8, 8) * torch.arange(8.0)        # the same image on every slice
    >>> bool(torch.allclose(kz_filter(x, 0.5), x, atol=1e-12))
    True
    """
    if stack.ndim != 3:
        raise ValueError(f"kz_filter needs a (n_slices, H, W) stack, got shape {tuple(stack.shape)}")
    if weights is None:
        weights = kz_filter_weights(stack.shape[0], stack.shape[1:], beta, dtype=stack.dtype, device=stack.device)
    return torch.fft.ifftn(torch.fft.fftn(stack, dim=(0, 1, 2)) * weights, dim=(0, 1, 2)).real.to(stack.dtype)


def pearson(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation of two images (differentiable), over ``mask`` (bool (H, W)) when given."""
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a.reshape(-1) - a.mean()
    b = b.reshape(-1) - b.mean()
    return (a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum() + eps)


def slice_correlation_penalty(phase: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum_{i<j} rho(phase_i, phase_j)^2 over the slices of a (n_slices, H, W) stack (0 for one slice).

    Examples
    --------
    >>> x = torch.stack([torch.arange(16.0).reshape(4, 4), torch.arange(16.0).reshape(4, 4) * 2 + 1])
    >>> round(float(slice_correlation_penalty(x)), 6)
    1.0
    """
    n = phase.shape[0]
    total = phase.new_zeros(())
    for i in range(n):
        for j in range(i + 1, n):
            total = total + pearson(phase[i], phase[j], mask) ** 2
    return total
