"""The modified double-deep-image-prior model (Du, Huang & Jacobsen 2021, Fig. 1 and eq. 2), for N >= 2 slices.

Image DIPs DIP-1..DIP-N map fixed noise z_i to clean slices y_i; a weight DIP (DIP-3 in the paper) maps N-channel
noise to N channels whose centre pixels give the blending weights alpha_i = 0.9 out_i[H//2, W//2] + 0.05, so
alpha_i is in (0.05, 0.95). Learnable filters f_ij (a 7x7 kernel or a shallow DIP) model the band loss of the ghost of
slice j on slice i.

Synthesis. For N = 2 the paper's equations, exactly::

    I'_1 = alpha_1 y_1 + (1 - alpha_1) f_12(y_2)
    I'_2 = alpha_2 f_21(y_1) + (1 - alpha_2) y_2

(note alpha_2 weighs the *ghost*). For N > 2 each slice keeps its own weight w_i = alpha_i and shares the rest among
the ghosts::

    I'_i = w_i y_i + (1 - w_i) / (N - 1) * sum_{j != i} f_ij(y_j)

The N = 2 model is the general one with w_1 = alpha_1 and w_2 = 1 - alpha_2; ``alpha`` is always reported in the
paper's convention for N = 2 and as the own weights w_i for N > 2.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .networks import KernelFilter, ShallowDIPFilter, SkipDIP

FILTER_TYPES = ("kernel", "dip")
GHOST_KINDS = ("lowpass", "highpass")


def default_ghost_kinds(n_slices: int) -> tuple:
    """Ghost band seen on each slice: slice 1 gets a low-pass ghost (weak scatterers downstream), the others a
    high-pass ghost (a strong scatterer upstream), as in the paper's Au/NiO and ZP/NiO data."""
    return ("lowpass",) + ("highpass",) * (n_slices - 1)


class DDIPModel(nn.Module):
    """DDIP generator for ``n_slices`` images of size ``shape``.

    Parameters
    ----------
    n_slices : number of slices N >= 2.
    shape : (H, W) of the images.
    filters : ``"kernel"`` (learnable kernel) or ``"dip"`` (shallow 3-level DIP).
    ghost_kinds : per slice i, the band of the ghosts it receives (``"lowpass"``/``"highpass"``): initialises f_ij.
        Swap to ``("highpass", "lowpass")`` when slice 1 is the one hit by a strong scatterer.
    channels, skip_channels : image/weight DIP widths (DESIGN.md section 3 defaults).
    noise_scale : z ~ U(-0.5, 0.5) * noise_scale (0.01 as in the original code).
    filter_sigmoid : end shallow-DIP filters in a sigmoid (the original; cannot make negative high-pass ghosts).
    seed : seeds the noise inputs and all initial weights (no global RNG state is touched).
    """

    def __init__(self, n_slices: int, shape: Sequence[int], filters: str = "kernel",
                 ghost_kinds: Sequence[str] | None = None, channels: Sequence[int] = (8, 16, 32, 64, 128),
                 skip_channels: Sequence[int] = (0, 0, 0, 4, 4), noise_scale: float = 0.01,
                 filter_sigmoid: bool = False, seed: int = 0):
        super().__init__()
        if n_slices < 2:
            raise ValueError(f"DDIP needs at least 2 slices, got {n_slices}")
        if filters not in FILTER_TYPES:
            raise ValueError(f"filters must be one of {FILTER_TYPES}, got {filters!r}")
        ghost_kinds = tuple(ghost_kinds) if ghost_kinds is not None else default_ghost_kinds(n_slices)
        if len(ghost_kinds) != n_slices or any(k not in GHOST_KINDS for k in ghost_kinds):
            raise ValueError(f"ghost_kinds needs {n_slices} entries from {GHOST_KINDS}, got {ghost_kinds}")
        self.n_slices = n_slices
        self.shape = (int(shape[0]), int(shape[1]))
        self.ghost_kinds = ghost_kinds
        gen = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.image_dips = nn.ModuleList(SkipDIP(1, 1, channels, skip_channels) for _ in range(n_slices))
            self.weight_dip = SkipDIP(n_slices, n_slices, channels, skip_channels)
            self.filters = nn.ModuleDict()
            for i in range(n_slices):
                for j in range(n_slices):
                    if i != j:
                        kind = ghost_kinds[i]
                        self.filters[f"f_{i + 1}_{j + 1}"] = (KernelFilter(kind) if filters == "kernel"
                                                              else ShallowDIPFilter(kind, filter_sigmoid))
        ph, pw = self.image_dips[0].padded_shape(*self.shape)
        z_img = (torch.rand(n_slices, 1, 1, ph, pw, generator=gen) - 0.5) * noise_scale
        z_w = (torch.rand(1, n_slices, ph, pw, generator=gen) - 0.5) * noise_scale
        self.register_buffer("z_images", z_img)
        self.register_buffer("z_weights", z_w)

    def images(self) -> torch.Tensor:
        """Clean slices y (N, 1, H, W), values in (0, 1)."""
        return torch.cat([dip(self.z_images[i], self.shape) for i, dip in enumerate(self.image_dips)], dim=0)

    def alphas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha in the reported convention, own weights w) each (N,), in (0.05, 0.95)."""
        out = self.weight_dip(self.z_weights, self.shape)
        h, w = self.shape
        alpha = 0.9 * out[0, :, h // 2, w // 2] + 0.05
        if self.n_slices == 2:
            own = torch.stack([alpha[0], 1.0 - alpha[1]])
        else:
            own = alpha
        return alpha, own

    def ghost(self, i: int, j: int, y: torch.Tensor) -> torch.Tensor:
        """The ghost f_ij(y_j) of slice j on slice i (0-based), (1, 1, H, W)."""
        return self.filters[f"f_{i + 1}_{j + 1}"](y[j : j + 1])

    def synthesize(self, y: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """Blended images I' (N, 1, H, W) from clean slices y (N, 1, H, W) and own weights (N,)."""
        n = self.n_slices
        out = []
        for i in range(n):
            ghost = sum(self.ghost(i, j, y) for j in range(n) if j != i)
            out.append(own[i] * y[i : i + 1] + (1.0 - own[i]) / (n - 1) * ghost)
        return torch.cat(out, dim=0)

    def forward(self) -> dict:
        y = self.images()
        alpha, own = self.alphas()
        return {"y": y, "alpha": alpha, "own": own, "synth": self.synthesize(y, own)}

    def filter_arrays(self) -> dict:
        """Learned filters as numpy arrays: the kernels, or the flattened parameters of shallow DIPs."""
        out = {}
        for name, f in self.filters.items():
            if isinstance(f, KernelFilter):
                out[name] = f.weight.detach()[0, 0].cpu().numpy()
            else:
                out[name] = torch.cat([p.detach().flatten() for p in f.parameters()]).cpu().numpy()
        return out
