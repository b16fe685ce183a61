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
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from .model import DDIPModel
from .networks import (KernelFilter, SkipDIP, correlate_kernels, gaussian_blur, group_parameters, pad_to_multiple,
                       project_kernels_to_band, stack_into)

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
                 filter_sigmoid: bool = False, ghost_norm: bool = False,
                 kernel_size: int | Sequence[int] = 7, filter_blur: float = 0.0, channels_last: bool = True):
        super().__init__()
        refs = [DDIPModel(n_slices, shape, filters=filters, ghost_kinds=ghost_kinds, channels=channels,
                          skip_channels=skip_channels, noise_scale=noise_scale, filter_sigmoid=filter_sigmoid,
                          ghost_norm=ghost_norm, kernel_size=kernel_size, filter_blur=filter_blur, seed=int(s))
                for s in seeds]
        k, n = len(refs), n_slices
        self.members, self.n_slices, self.shape = k, n, refs[0].shape
        self.filter_type, self.ghost_norm = filters, bool(ghost_norm)
        self.ghost_kinds = refs[0].ghost_kinds
        self.pairs = _pairs(n)
        p = len(self.pairs)
        self.images_net = SkipDIP(1, 1, channels, skip_channels, groups=k * n)
        stack_into(self.images_net, [r.image_dips[i] for r in refs for i in range(n)])
        self.weights_net = SkipDIP(n, n, channels, skip_channels, groups=k)
        stack_into(self.weights_net, [r.weight_dip for r in refs])
        names = [f"f_{i + 1}_{j + 1}" for i, j in self.pairs]
        if filters == "kernel":
            ks = [r.filters[m].weight.detach() for r in refs for m in names]
            size = max(k_.shape[-1] for k_ in ks)  # one grouped convolution: smaller kernels are zero-padded ...
            self.kernel_sizes = [k_.shape[-1] for k_ in ks]
            pads = [(size - s) // 2 for s in self.kernel_sizes]
            self.kernels = nn.Parameter(torch.cat([F.pad(k_, (p_,) * 4) for k_, p_ in zip(ks, pads)]))
            if len(set(self.kernel_sizes)) > 1:  # ... and masked to their own support (no gradient outside it)
                mask = torch.zeros_like(self.kernels)
                for q, (s, p_) in enumerate(zip(self.kernel_sizes, pads)):
                    mask[q, :, p_ : p_ + s, p_ : p_ + s] = 1.0
                self.register_buffer("kernel_mask", mask)
            else:
                self.kernel_mask = None
            self.filter_net = None
        else:
            src = [r.filters[m].net for r in refs for m in names]
            self.filter_net = SkipDIP(1, 1, (1,) * src[0].levels, (1,) * src[0].levels,
                                      sigmoid=src[0].sigmoid, groups=k * p)
            stack_into(self.filter_net, src)
            self.kernels = None
        self.filter_blur = float(filter_blur) if filters == "dip" else 0.0
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
            kern = self.kernels if self.kernel_mask is None else self.kernels * self.kernel_mask
            g = correlate_kernels(src, kern)
        else:
            sp, (top, left) = pad_to_multiple(src, self.filter_net.multiple, self.filter_net.min_size)
            out = self.filter_net(sp)[..., top : top + h, left : left + w]
            if self.filter_blur > 0:  # low-pass form G_blur * net(y) (ShallowDIPFilter)
                g = (1.0 - self.highpass) * gaussian_blur(out, self.filter_blur) + self.highpass * (src - out)
            else:
                g = out + self.highpass * (src - 2.0 * out)  # high-pass form y - net(y), low-pass net(y)
        g = g.reshape(k, len(self.pairs), h, w)
        if self.ghost_norm:
            s = src.reshape(k, -1, h, w)
            g = g * (s.std(dim=(-2, -1), keepdim=True) / (g.std(dim=(-2, -1), keepdim=True) + 1e-8))
        return g.reshape(k, n, n - 1, h, w)

    def project_filters(self) -> None:
        """Project kernel filters onto their band (networks.project_kernels_to_band); DIP filters are left alone."""
        if self.kernels is not None:
            project_kernels_to_band(self.kernels, self.highpass.reshape(-1), self.kernel_mask)

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
                p_ = (arr.shape[-1] - self.kernel_sizes[g]) // 2
                arr = arr[p_ : arr.shape[-1] - p_, p_ : arr.shape[-1] - p_]
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

    def project_filters(self) -> None:
        for m in self.models:
            for name, f in m.filters.items():
                if isinstance(f, KernelFilter):
                    i = int(name.split("_")[1]) - 1  # f_i_j: the ghost received by slice i
                    hp = torch.tensor([m.ghost_kinds[i] == "highpass"])
                    project_kernels_to_band(f.weight.data, hp)


def build_model(n_slices: int, shape: Sequence[int], seeds: Sequence[int], fast: bool = True,
                **kwargs) -> nn.Module:
    """The fast batched model (``fast=True``) or the plain looped reference, for members with ``seeds``."""
    return (BatchedDDIP if fast else LoopedDDIP)(n_slices, shape, seeds, **kwargs)
