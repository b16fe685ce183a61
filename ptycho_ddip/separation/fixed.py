"""DDIP with the estimated mixing held fixed (``SeparationOptions.method="estimate"``, the default).

The image DIPs are those of :class:`~.model.DDIPModel` (same seeds, same weights and noise inputs, computed as one
grouped network as on the fast path); the weight DIP and the learnable filters are replaced by the mixing estimated
beforehand (:mod:`.mixing`). With the mixing fixed, the mismatch has one exact minimiser, the unmixed slices
Y = M^-1 I: the networks cannot trade ghost amplitude between the own and the ghost terms, which is how the learnable
mixing lets the ghost come back. The networks' prior still acts: they fit smooth content first and noise last, as in
any DIP.

Units. The fitting target x (N, H, W) is in [0, 1] (jointly normalised). Each network image y_i in (0, 1) maps to
the unmixed slice as Y_i = lo_i + span_i y_i, with [lo_i, lo_i + span_i] the range of M^-1 x widened by 10 % of it on
both sides (so the fit stays away from the sigmoid's flat ends). The synthesis is x' = M Y.

Reported weights. There are no alphas in this model; ``alpha`` reports the own-signal share of each input,
w_i = std(Y_i) / (std(Y_i) + sum_j std(H_ij Y_j)) of the unmixed slices, in the paper's convention for N = 2
(alpha_1 = w_1, alpha_2 = 1 - w_2), constant over the fit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .mixing import Mixing, apply_unmixing, ghost_terms
from .model import DDIPModel
from .networks import SkipDIP, stack_into

__all__ = ["FixedMixingDIP", "MARGIN"]

MARGIN = 0.1  # fraction of an unmixed slice's range added below and above it for the network's (0, 1) output


class FixedMixingDIP(nn.Module):
    """K members (``seeds``) of N image DIPs and one fixed mixing, for targets ``target`` (N, H, W)."""

    def __init__(self, target: np.ndarray, mixing: Mixing, seeds: Sequence[int] = (0,),
                 channels: Sequence[int] = (8, 16, 32, 64, 128), skip_channels: Sequence[int] = (0, 0, 0, 4, 4),
                 noise_scale: float = 0.01, channels_last: bool = True):
        super().__init__()
        target = np.asarray(target, dtype=np.float64)
        n, h, w = target.shape
        if mixing.weights.shape[0] != n:
            raise ValueError(f"the mixing is for {mixing.weights.shape[0]} slices, the target has {n}")
        kinds = mixing.ghost_kinds if mixing.model == "ghost" else None  # only the image DIPs are taken from refs
        refs = [DDIPModel(n, (h, w), filters="kernel", ghost_kinds=kinds, channels=channels,
                          skip_channels=skip_channels, noise_scale=noise_scale, seed=int(s)) for s in seeds]
        k = len(refs)
        self.members, self.n_slices, self.shape = k, n, (h, w)
        self.ghost_kinds = mixing.ghost_kinds
        self.mixing = mixing
        self.images_net = SkipDIP(1, 1, channels, skip_channels, groups=k * n)
        stack_into(self.images_net, [r.image_dips[i] for r in refs for i in range(n)])
        self.register_buffer("z_images", torch.cat([r.z_images.reshape(1, n, *r.z_images.shape[-2:])
                                                    for r in refs], dim=1))
        m = mixing.matrix((h, w))
        x = torch.as_tensor(target)
        unmixed = apply_unmixing(x, mixing.unmixing((h, w)))
        lo, hi = unmixed.amin(dim=(-2, -1)), unmixed.amax(dim=(-2, -1))
        span = (hi - lo).clamp_min(1e-12)
        self.register_buffer("lo", (lo - MARGIN * span)[:, None, None])
        self.register_buffer("span", ((1.0 + 2.0 * MARGIN) * span)[:, None, None])
        self.register_buffer("matrix", m)
        self.register_buffer("unmixed", unmixed.float())
        ghosts = ghost_terms(unmixed, m)  # (N, N - 1, H, W)
        own = unmixed.std(dim=(-2, -1)) / (unmixed.std(dim=(-2, -1)) + ghosts.std(dim=(-2, -1)).sum(dim=1))
        alpha = torch.stack([own[0], 1.0 - own[1]]) if n == 2 else own
        self.register_buffer("own_weights", own.float())
        self.register_buffer("alpha_weights", alpha.float())
        self.register_buffer("direct", ((unmixed - lo[:, None, None]) / span[:, None, None]).float()
                             * (1.0 / (1.0 + 2.0 * MARGIN)) + MARGIN / (1.0 + 2.0 * MARGIN))
        if channels_last:
            self.images_net.to(memory_format=torch.channels_last)

    def slices(self, y: torch.Tensor) -> torch.Tensor:
        """Network images y (K, N, H, W) in (0, 1) -> slices Y = lo + span y in the target's units."""
        return self.lo.to(y.dtype) + self.span.to(y.dtype) * y

    def ghosts(self, y: torch.Tensor) -> torch.Tensor:
        """Every ghost H_ij Y_j, (K, N, N - 1, H, W), of network images y (K, N, H, W)."""
        return ghost_terms(self.slices(y), self.matrix.to(y.dtype))

    def outputs(self, y: torch.Tensor) -> dict:
        """The model's outputs for network images y (K, N, H, W) (see :meth:`forward`)."""
        k = y.shape[0]
        big = self.slices(y)
        g = ghost_terms(big, self.matrix.to(y.dtype))
        return {"y": y, "alpha": self.alpha_weights.to(y.dtype).expand(k, -1),
                "own": self.own_weights.to(y.dtype).expand(k, -1), "ghosts": g,
                "synth": big + g.sum(dim=2), "slices": big}

    def forward(self) -> dict:
        """``y`` (K, N, H, W) network images, ``alpha`` / ``own`` (K, N) the reported weights (constant),
        ``ghosts`` (K, N, N - 1, H, W), ``synth`` (K, N, H, W) the mixed images, ``slices`` Y = lo + span y."""
        h, w = self.shape
        y = self.images_net(self.z_images, self.shape).reshape(self.members, self.n_slices, h, w)
        return self.outputs(y)

    def unmixed_outputs(self) -> dict:
        """The outputs of the unmixed slices M^-1 x themselves (what ``epochs=0`` returns), one per member."""
        y = self.direct.to(self.lo.dtype)[None].expand(self.members, -1, -1, -1)
        return self.outputs(y)

    def components(self, out: dict) -> torch.Tensor:
        """(K, N_input, N_slot, H, W): [k, i, i] the own term Y_i, [k, i, j] the ghost H_ij Y_j; sums to synth."""
        big, g = out["slices"], out["ghosts"]
        k, n, h, w = big.shape
        comps = big.new_zeros(k, n, n, h, w)
        for i in range(n):
            comps[:, i, i] = big[:, i]
            for q, j in enumerate(j for j in range(n) if j != i):
                comps[:, i, j] = g[:, i, q]
        return comps

    def filter_arrays(self, member: int) -> dict:
        """The mixing's basis weights per ghost (``f_i_j``) and the basis widths (``sigmas_px``)."""
        n = self.n_slices
        out = {f"f_{i + 1}_{j + 1}": np.asarray(self.mixing.weights[i, j], dtype=np.float64)
               for i in range(n) for j in range(n) if i != j}
        out["sigmas_px"] = np.asarray(self.mixing.sigmas_px, dtype=np.float64)
        return out
