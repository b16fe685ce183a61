"""K ensemble members of the DDIP model fitted together: the fast path of the fitting loop.

:class:`BatchedDDIP` holds K members of :class:`~.model.DDIPModel` in grouped networks: all K x N image DIPs are
one grouped :class:`~.networks.SkipDIP`, the K weight DIPs another, and the K x N(N-1) ghost filters one grouped
convolution (kernels) or one grouped shallow DIP. Member k is initialised from ``DDIPModel(..., seed=seeds[k])``
(the same weights and noise inputs, copied), and since the members share no parameter and Adam is element-wise, the
sum of the members' losses gives every member exactly the updates of a separate run, to float rounding: an ensemble
of K costs one call per layer instead of K. The layout is channels-last by default (measured faster on CPU;
``benchmarks/bench_separation.py --compare``).

:class:`LoopedDDIP` is the reference ("plain eager") form with the same interface: K separate ``DDIPModel`` called
one after the other in the default memory layout.

Both return, from ``forward()``, a dict of ``y`` (K, N, H, W) clean images, ``alpha`` (K, N) weights in the
reported convention, ``own`` (K, N) own weights and ``synth`` (K, N, H, W) synthesised inputs (BatchedDDIP also
``ghosts`` (K, N, N - 1, H, W), the filtered ghosts f_ij(y_j)).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.profiler import record_function

from .model import DDIPModel
from .networks import SkipDIP, correlate_kernels, group_parameters, pad_to_multiple, stack_into

__all__ = ["BatchedDDIP", "LoopedDDIP", "build_model"]


def _pairs(n: int) -> list:
    """Ghost filter order (i, j), i != j, i major: the order of DDIPModel's filters."""
    return [(i, j) for i in range(n) for j in range(n) if i != j]


def _synthesize(y: torch.Tensor, own: torch.Tensor, ghosts: torch.Tensor) -> torch.Tensor:
    """I'_i = w_i y_i + (1 - w_i)/(N - 1) sum_j f_ij(y_j); y (K, N, H, W), own (K, N), ghosts (K, N, N-1, H, W)."""
    n = y.shape[1]
    w = own[..., None, None]
    return w * y + (1.0 - w) / (n - 1) * ghosts.sum(dim=2)


class BatchedDDIP(nn.Module):
    """K DDIP members (seeds ``seeds``) computed by grouped networks; keyword arguments as for DDIPModel."""

    def __init__(self, n_slices: int, shape: Sequence[int], seeds: Sequence[int] = (0,), filters: str = "kernel",
                 ghost_kinds: Sequence[str] | None = None, channels: Sequence[int] = (8, 16, 32, 64, 128),
                 skip_channels: Sequence[int] = (0, 0, 0, 4, 4), noise_scale: float = 0.01,
                 filter_sigmoid: bool = False, channels_last: bool = True):
        super().__init__()
        refs = [DDIPModel(n_slices, shape, filters=filters, ghost_kinds=ghost_kinds, channels=channels,
                          skip_channels=skip_channels, noise_scale=noise_scale, filter_sigmoid=filter_sigmoid,
                          seed=int(s)) for s in seeds]
        k, n = len(refs), n_slices
        self.members, self.n_slices, self.shape = k, n, refs[0].shape
        self.filter_type = filters
        self.ghost_kinds = refs[0].ghost_kinds
        self.pairs = _pairs(n)
        p = len(self.pairs)
        self.images_net = SkipDIP(1, 1, channels, skip_channels, groups=k * n)
        stack_into(self.images_net, [r.image_dips[i] for r in refs for i in range(n)])
        self.weights_net = SkipDIP(n, n, channels, skip_channels, groups=k)
        stack_into(self.weights_net, [r.weight_dip for r in refs])
        names = [f"f_{i + 1}_{j + 1}" for i, j in self.pairs]
        if filters == "kernel":
            self.kernels = nn.Parameter(torch.cat([r.filters[m].weight.detach() for r in refs for m in names]))
            self.filter_net = None
        else:
            src = [r.filters[m].net for r in refs for m in names]
            self.filter_net = SkipDIP(1, 1, (1,) * src[0].levels, (1,) * src[0].levels,
                                      sigmoid=src[0].sigmoid, groups=k * p)
            stack_into(self.filter_net, src)
            self.kernels = None
        hp = torch.tensor([float(self.ghost_kinds[i] == "highpass") for i, _ in self.pairs] * k)
        self.register_buffer("highpass", hp[None, :, None, None])
        self.register_buffer("source_index", torch.tensor([j for _, j in self.pairs]))
        self.register_buffer("z_images", torch.cat([r.z_images.reshape(1, n, *r.z_images.shape[-2:])
                                                    for r in refs], dim=1))
        self.register_buffer("z_weights", torch.cat([r.z_weights for r in refs], dim=1))
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def ghosts(self, y: torch.Tensor) -> torch.Tensor:
        """Every ghost f_ij(y_j), (K, N, N - 1, H, W), from clean images y (K, N, H, W)."""
        k, n, h, w = y.shape
        src = y[:, self.source_index].reshape(1, -1, h, w)
        if self.kernels is not None:
            g = correlate_kernels(src, self.kernels)
        else:
            sp, (top, left) = pad_to_multiple(src, self.filter_net.multiple, self.filter_net.min_size)
            out = self.filter_net(sp)[..., top : top + h, left : left + w]
            g = out + self.highpass * (src - 2.0 * out)  # high-pass form y - net(y), low-pass net(y)
        return g.reshape(k, n, n - 1, h, w)

    def forward(self) -> dict:
        h, w = self.shape
        k, n = self.members, self.n_slices
        with record_function("ddip.image_dips"):
            y = self.images_net(self.z_images, self.shape).reshape(k, n, h, w)
        with record_function("ddip.weight_dip"):
            out = self.weights_net(self.z_weights, self.shape)
            alpha = 0.9 * out[0, :, h // 2, w // 2].reshape(k, n) + 0.05
            own = torch.stack([alpha[:, 0], 1.0 - alpha[:, 1]], dim=1) if n == 2 else alpha
        with record_function("ddip.filters"):
            g = self.ghosts(y)
        return {"y": y, "alpha": alpha, "own": own, "ghosts": g, "synth": _synthesize(y, own, g)}

    def filter_arrays(self, member: int) -> dict:
        """Member ``member``'s learned filters, as DDIPModel.filter_arrays returns them."""
        out = {}
        p = len(self.pairs)
        for q, (i, j) in enumerate(self.pairs):
            g = member * p + q
            if self.kernels is not None:
                arr = self.kernels.detach()[g, 0]
            else:
                arr = torch.cat([t.flatten() for t in group_parameters(self.filter_net, g)])
            out[f"f_{i + 1}_{j + 1}"] = arr.cpu().numpy()
        return out


class LoopedDDIP(nn.Module):
    """K separate DDIPModel members called one after another (the plain reference path)."""

    def __init__(self, n_slices: int, shape: Sequence[int], seeds: Sequence[int] = (0,), **kwargs):
        super().__init__()
        kwargs.pop("channels_last", None)
        self.models = nn.ModuleList(DDIPModel(n_slices, shape, seed=int(s), **kwargs) for s in seeds)
        self.members, self.n_slices, self.shape = len(self.models), n_slices, self.models[0].shape

    def forward(self) -> dict:
        outs = [m() for m in self.models]
        return {"y": torch.stack([o["y"][:, 0] for o in outs]), "alpha": torch.stack([o["alpha"] for o in outs]),
                "own": torch.stack([o["own"] for o in outs]), "synth": torch.stack([o["synth"][:, 0] for o in outs])}

    def ghosts(self, y: torch.Tensor) -> torch.Tensor:
        k, n, h, w = y.shape
        out = []
        for m, yk in zip(self.models, y):
            out.append(torch.stack([torch.cat([m.ghost(i, j, yk[:, None]) for j in range(n) if j != i], 1)[0]
                                    for i in range(n)]))
        return torch.stack(out)

    def filter_arrays(self, member: int) -> dict:
        return self.models[member].filter_arrays()


def build_model(n_slices: int, shape: Sequence[int], seeds: Sequence[int], fast: bool = True,
                **kwargs) -> nn.Module:
    """The fast batched model (``fast=True``) or the plain looped reference, for members with ``seeds``."""
    return (BatchedDDIP if fast else LoopedDDIP)(n_slices, shape, seeds, **kwargs)
