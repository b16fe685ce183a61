"""Loss terms of the DDIP separation (Du, Huang & Jacobsen 2021, eq. 4; DESIGN.md section 3).

* :func:`mismatch`: mean-squared difference between synthesised and input images, summed over slices.
* :func:`exclusion_loss`: multi-scale gradient exclusion of Gandelsman et al. (2019) as coded for DDIP: forward
  differences along x and y, squashed with ``s(g) = tanh(g / 2)`` (= 2 sigmoid(g) - 1), per scale and direction the
  term ``mean(s(g_1)^2 s(g_2)^2) ** (1/4)``, images average-pooled 2x2 between ``scales`` scales, the sum scaled by
  ``1 / 90`` (= 1 / (2 directions x 5 scales x 9)).
* :func:`weight_regularizer`: ``0.5 * sum_i (alpha_i - 0.5)^2``, applied by the fitting loop in the first epochs.

All functions take tensors of shape (B, 1, H, W) or (H, W) batches and are differentiable.
:func:`exclusion_pairs` is the fused form used by the fitting loop: every pair of every ensemble member in one pass
over the scales (the same numbers as :func:`exclusion_loss` pair by pair, to float rounding).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-12  # keeps the 1/4 power differentiable at 0; the loss is shifted so that it is exactly 0 there


def mismatch(synth: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean-squared mismatch per slice, summed over slices. Both (N, 1, H, W) or (N, H, W); slice axis first."""
    diff = (synth - target).reshape(synth.shape[0], -1)
    return diff.pow(2).mean(dim=1).sum()


def _quarter_root(m: torch.Tensor) -> torch.Tensor:
    return (m + _EPS) ** 0.25 - _EPS**0.25


def exclusion_loss(y1: torch.Tensor, y2: torch.Tensor, scales: int = 5, norm: float = 90.0,
                   balance: bool = False) -> torch.Tensor:
    """Multi-scale gradient exclusion between two images (B, 1, H, W); 0 when either image is constant.

    Parameters
    ----------
    y1, y2 : images of the same shape, (B, C, H, W) or (H, W).
    scales : number of scales (2x2 average pooling between them).
    norm : the sum over scales and directions is divided by this (90 in the DDIP code).
    balance : scale y2's gradients by ``2 mean|g1| / mean|g2|`` before squashing (Gandelsman et al.'s original
        exclusion, which the DDIP code dropped): weak, smooth edges then count as much as strong, sharp ones.
    """
    if y1.dim() == 2:
        y1, y2 = y1[None, None], y2[None, None]
    total = y1.new_zeros(())
    for level in range(scales):
        for dim in (-1, -2):
            d1, d2 = torch.diff(y1, dim=dim), torch.diff(y2, dim=dim)
            if balance:
                d2 = d2 * (2.0 * d1.abs().mean() / (d2.abs().mean() + 1e-12))
            g1 = torch.tanh(d1 * 0.5)
            g2 = torch.tanh(d2 * 0.5)
            total = total + _quarter_root((g1.pow(2) * g2.pow(2)).mean())
        if level < scales - 1:
            y1 = F.avg_pool2d(y1, 2)
            y2 = F.avg_pool2d(y2, 2)
    return total / norm


def exclusion_all_pairs(ys: torch.Tensor, scales: int = 5, norm: float = 90.0, balance: bool = False) -> torch.Tensor:
    """Sum of :func:`exclusion_loss` over all pairs i < j of the slices ys (N, 1, H, W)."""
    n = ys.shape[0]
    total = ys.new_zeros(())
    for i in range(n):
        for j in range(i + 1, n):
            total = total + exclusion_loss(ys[i : i + 1], ys[j : j + 1], scales, norm, balance)
    return total


def exclusion_pairs(a: torch.Tensor, b: torch.Tensor, scales: int = 5, norm: float = 90.0,
                    balance: bool = False, gain: float | None = None) -> torch.Tensor:
    """Exclusion between image pairs (a[k, p], b[k, p]), summed over pairs p: returns (K,), one value per member.

    ``a`` and ``b`` are (K, P, H, W); pair p of member k is scored exactly as ``exclusion_loss(a[k, p], b[k, p])``
    (``balance`` scales b's gradients), but all pairs and members go through each scale together.

    ``gain`` (the form the mixing estimate uses, :mod:`.mixing`): at every scale and direction, *both* images'
    differences are rescaled to a mean absolute value of ``gain`` before squashing. The loss is then invariant to
    each image's scale, scale by scale, and symmetric (Gandelsman et al.'s balancing rescales only the second
    image, to twice the first's). A large gain saturates the tanh, so the term counts where both images have an
    edge rather than how strong the edges are. ``balance`` is ignored when ``gain`` is given.
    """
    total = a.new_zeros(a.shape[0])
    for level in range(scales):
        for dim in (-1, -2):
            d1, d2 = torch.diff(a, dim=dim), torch.diff(b, dim=dim)
            if gain is not None:
                d1 = d1 * (gain / (d1.abs().mean(dim=(-2, -1), keepdim=True) + 1e-12))
                d2 = d2 * (gain / (d2.abs().mean(dim=(-2, -1), keepdim=True) + 1e-12))
            elif balance:
                s = 2.0 * d1.abs().mean(dim=(-2, -1), keepdim=True) / (d2.abs().mean(dim=(-2, -1), keepdim=True)
                                                                       + 1e-12)
                d2 = d2 * s
            prod = (torch.tanh(d1 * 0.5) * torch.tanh(d2 * 0.5)).pow(2)
            total = total + _quarter_root(prod.mean(dim=(-2, -1))).sum(dim=1)
        if level < scales - 1:
            a = F.avg_pool2d(a, 2)
            b = F.avg_pool2d(b, 2)
    return total / norm


def weight_regularizer(alpha: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """``weight * sum_i (alpha_i - 0.5)^2``: keeps the blending weights near 0.5."""
    return weight * (alpha - 0.5).pow(2).sum()
