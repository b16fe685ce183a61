"""Networks of the double deep image prior: the skip U-Net DIP, the shallow filter DIP and the 7x7 filter.

The skip U-Net follows Ulyanov et al. (2018) as used by Du, Huang & Jacobsen (2021), DESIGN.md section 3:

* encoder level i: reflection-padded 5x5 conv, stride 2 (the down-sampling) -> BN -> LeakyReLU(0.2)
  -> 5x5 conv -> BN -> LeakyReLU;
* skip branch i (only where ``skip_channels[i] > 0``): 1x1 conv -> BN -> LeakyReLU, taken from the level's input;
* decoder level i: bilinear x2 up-sampling of the deeper output, concatenation with the skip, BN -> 5x5 conv -> BN
  -> LeakyReLU -> 1x1 conv -> BN -> LeakyReLU;
* output: 1x1 conv -> sigmoid.

BatchNorm stays in training mode (batch statistics), as in DIP practice. A network takes any spatial size: inputs are
padded (reflection) to a multiple of ``2**levels`` and outputs cropped back, so the output always has the input's
size (the original code silently returned a larger image).

Grouped networks. ``SkipDIP(..., groups=G)`` is G independent networks in one module: every convolution is grouped,
BatchNorm is per channel (with batch size 1 its statistics are per network), and the skip concatenation is done per
group, so group g computes exactly what a separate ``SkipDIP`` with group g's parameters computes, in one call per
layer (fewer, larger kernels: the batched ensembles and the fast DDIP model of :mod:`.batched`). Channels of the
input and output are grouped: network g reads channels ``g*in .. (g+1)*in - 1``. :func:`stack_into` copies G
separate networks into a grouped one and :func:`group_parameters` reads one network's parameters back.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SkipDIP", "ShallowDIPFilter", "KernelFilter", "correlate_kernels", "pad_to_multiple", "lowpass_kernel",
           "highpass_kernel", "initial_kernel", "stack_into", "group_parameters"]


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in * groups, c_out * groups, k, stride=stride, padding=k // 2,
                     padding_mode="reflect" if k > 1 else "zeros", groups=groups)


def _bn_act(c: int, groups: int = 1) -> list:
    return [nn.BatchNorm2d(c * groups), nn.LeakyReLU(0.2, inplace=True)]


def _cat_groups(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate along channels per group: [a_0, b_0, a_1, b_1, ...] (keeps channels-last layout)."""
    if groups == 1:
        return torch.cat([a, b], dim=1)
    cl = a.is_contiguous(memory_format=torch.channels_last) and a.shape[1] > 1
    out = torch.cat([a.unflatten(1, (groups, -1)), b.unflatten(1, (groups, -1))], dim=2).flatten(1, 2)
    return out.contiguous(memory_format=torch.channels_last) if cl else out


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflection-pad the last two axes of ``x`` (N, C, H, W) up to a multiple of ``multiple`` (and >= min_size).

    Returns the padded tensor and the (top, left) offsets to crop the original region back.
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, min_size)
    tw = max(-(-w // multiple) * multiple, min_size)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x, (0, 0)
    top, left = ph // 2, pw // 2
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (left, pw - left, top, ph - top), mode=mode), (top, left)


class _Level(nn.Module):
    def __init__(self, c_in: int, c_down: int, c_up: int, c_skip: int, deeper: "_Level | None", c_deeper_out: int,
                 groups: int = 1):
        super().__init__()
        g = groups
        self.groups = g
        self.skip = nn.Sequential(_conv(c_in, c_skip, 1, 1, g), *_bn_act(c_skip, g)) if c_skip > 0 else None
        self.down = nn.Sequential(_conv(c_in, c_down, 5, 2, g), *_bn_act(c_down, g), _conv(c_down, c_down, 5, 1, g),
                                  *_bn_act(c_down, g))
        self.deeper = deeper
        k = c_deeper_out if deeper is not None else c_down
        self.up = nn.Sequential(nn.BatchNorm2d((c_skip + k) * g), _conv(c_skip + k, c_up, 5, 1, g), *_bn_act(c_up, g),
                                _conv(c_up, c_up, 1, 1, g), *_bn_act(c_up, g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        if self.skip is not None:
            d = _cat_groups(self.skip(x), d, self.groups)
        return self.up(d)


class SkipDIP(nn.Module):
    """Skip encoder-decoder deep image prior.

    Parameters
    ----------
    in_channels, out_channels : channels of the noise input and of the output image(s).
    channels : channels per level, shallowest first (default 8, 16, 32, 64, 128: 5 levels).
    skip_channels : channels of the skip branch per level (0 = no skip), default (0, 0, 0, 4, 4).
    sigmoid : end in a sigmoid (outputs in (0, 1)).
    groups : number of independent networks computed together (see the module docstring).

    Examples
    --------
    >>> net = SkipDIP(1, 1)
    >>> net(torch.zeros(1, 1, 100, 130)).shape
    torch.Size([1, 1, 100, 130])
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: Sequence[int] = (8, 16, 32, 64, 128),
                 skip_channels: Sequence[int] = (0, 0, 0, 4, 4), sigmoid: bool = True, groups: int = 1):
        super().__init__()
        if len(channels) != len(skip_channels):
            raise ValueError("channels and skip_channels need one entry per level")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.levels = len(channels)
        self.groups = groups
        deeper, deeper_out = None, 0
        ins = [in_channels] + list(channels[:-1])
        for i in reversed(range(self.levels)):
            deeper = _Level(ins[i], channels[i], channels[i], skip_channels[i], deeper, deeper_out, groups)
            deeper_out = channels[i]
        self.body = deeper
        self.head = nn.Conv2d(channels[0] * groups, out_channels * groups, 1, groups=groups)
        self.sigmoid = sigmoid

    @property
    def multiple(self) -> int:
        """Spatial sizes are padded to a multiple of this."""
        return 2**self.levels

    @property
    def min_size(self) -> int:
        """Smallest padded size: the deepest 5x5 reflection-padded convolution needs 3 pixels."""
        return 3 * 2**self.levels

    def padded_shape(self, h: int, w: int) -> tuple[int, int]:
        """The (H, W) the network computes on for an (h, w) output: draw noise inputs at this size."""
        m = self.multiple
        return max(-(-h // m) * m, self.min_size), max(-(-w // m) * m, self.min_size)

    def forward(self, z: torch.Tensor, out_shape: tuple[int, int] | None = None) -> torch.Tensor:
        """Map ``z`` (N, C, H, W) to (N, out_channels, *out_shape); out_shape defaults to z's size.

        z is padded if its size is not a valid working size; the output is cropped (centred) to out_shape.
        """
        h, w = out_shape if out_shape is not None else z.shape[-2:]
        zp, (top, left) = pad_to_multiple(z, self.multiple, self.min_size)
        top += (z.shape[-2] - h) // 2
        left += (z.shape[-1] - w) // 2
        out = self.head(self.body(zp))
        out = out[..., top : top + h, left : left + w]
        return torch.sigmoid(out) if self.sigmoid else out


def stack_into(grouped: nn.Module, sources: Sequence[nn.Module]) -> None:
    """Copy the parameters and buffers of ``len(sources)`` identical ungrouped modules into ``grouped`` (the same
    module built with ``groups=len(sources)``): every tensor is the sources' tensors concatenated along axis 0."""
    src = [m.state_dict() for m in sources]
    state = {}
    for name, t in grouped.state_dict().items():
        if t.dim() == 0:  # BatchNorm's num_batches_tracked
            state[name] = src[0][name].clone()
        else:
            state[name] = torch.cat([s[name] for s in src], dim=0)
    grouped.load_state_dict(state)


def group_parameters(grouped: nn.Module, g: int) -> list:
    """Network g's parameters (in ``parameters()`` order) of a grouped module, as detached tensors."""
    out = []
    for p in grouped.parameters():
        n = p.shape[0] // grouped.groups
        out.append(p.detach()[g * n : (g + 1) * n])
    return out


class ShallowDIPFilter(nn.Module):
    """Shallow 3-level one-channel DIP used as a learnable ghost filter f(y).

    One channel throughout, 5x5 kernels, a 1x1 skip at every scale, as in the paper. The original ends in a sigmoid,
    which cannot produce the negative values of a high-pass ghost; by default this filter has a linear output
    (``sigmoid=False``); pass ``sigmoid=True`` to reproduce the original. Parameters are initialised from a uniform
    distribution (PyTorch's default Kaiming-uniform), as the paper says.

    ``init`` ("lowpass" or "highpass") only selects the residual form: for "highpass" the output is
    ``y - net(y)`` so that a fresh filter starts near a high-pass of y; for "lowpass" it is ``net(y)``.
    """

    def __init__(self, init: str = "lowpass", sigmoid: bool = False, levels: int = 3):
        super().__init__()
        if init not in ("lowpass", "highpass"):
            raise ValueError(f"init must be 'lowpass' or 'highpass', got {init!r}")
        self.init = init
        self.net = SkipDIP(1, 1, channels=(1,) * levels, skip_channels=(1,) * levels, sigmoid=sigmoid)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        yp, (top, left) = pad_to_multiple(y, self.net.multiple, self.net.min_size)
        out = self.net(yp)[..., top : top + h, left : left + w]
        return y - out if self.init == "highpass" else out


def lowpass_kernel(size: int = 7) -> torch.Tensor:
    """Uniform ``size x size`` averaging kernel (sums to 1)."""
    return torch.full((size, size), 1.0 / size**2)


def highpass_kernel(size: int = 7) -> torch.Tensor:
    """Five-point Laplacian (centre +4, four neighbours -1) embedded in a ``size x size`` kernel (sums to 0)."""
    k = torch.zeros(size, size)
    c = size // 2
    k[c, c] = 4.0
    k[c - 1, c] = k[c + 1, c] = k[c, c - 1] = k[c, c + 1] = -1.0
    return k


def initial_kernel(init: str, size: int = 7) -> torch.Tensor:
    """The paper's initial ghost filter: the ``size x size`` uniform low-pass or five-point Laplacian high-pass."""
    if init not in ("lowpass", "highpass"):
        raise ValueError(f"init must be 'lowpass' or 'highpass', got {init!r}")
    return lowpass_kernel(size) if init == "lowpass" else highpass_kernel(size)


def correlate_kernels(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Reflection-padded cross-correlation of channel m of ``x`` (B, M, H, W) with kernel m of ``kernels``
    (M, 1, s, s), s odd; the output has x's size."""
    pad = kernels.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), kernels, groups=kernels.shape[0])


class KernelFilter(nn.Module):
    """A single learnable ``size x size`` convolution kernel (reflection padded; 7 px as in the paper), initialised
    low- or high-pass (:func:`initial_kernel`)."""

    def __init__(self, init: str = "lowpass", size: int = 7):
        super().__init__()
        self.weight = nn.Parameter(initial_kernel(init, size)[None, None].clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return correlate_kernels(y, self.weight)
