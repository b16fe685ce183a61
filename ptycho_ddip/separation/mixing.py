"""The crosstalk mixing as isotropic linear filters: its truth-free estimate, the mixing itself and its inverse.

Why. The DDIP's learnable mixing (a weight DIP and the filters f_ij) can move ghost amplitude into the image DIPs:
late in a fit alpha runs to its bound and y_i fits the contaminated input, and the ghost comes back
(docs/method.md). Here the mixing is estimated first, by a model of a few numbers per slice pair that cannot fit
image content, and then held fixed (``SeparationOptions.method="estimate"``, the default).

Grid. Per spatial frequency k (cycles per pixel) of the images mirror-extended to (2H, 2W), so that the FFT's
circular convolution is a convolution with reflecting boundaries (``scipy.ndimage``'s ``mode="reflect"``). G_s(k) =
exp(-2 pi^2 sigma_s^2 |k|^2) are Gaussian blurs of widths ``sigmas_px``.

Models (``Mixing.model``):

* ``"direct"`` (default): the clean slices are Y = U I with U = 1 + R, each R_ij (i != j) a signed combination of an
  all-pass term and the G_s: all-pass, low-pass, high-pass (all-pass minus low-pass) and band-pass unmixing filters
  of either sign, 8 numbers per slice pair and direction. No ghost kinds are assumed: slices given in either order,
  and the flat, sign-changing leaks that a multislice reconstruction makes between slices a few depths of field
  apart (docs/crosstalk_benchmark.md), are inside the model. Its mixing M = U^-1 is reported in the ghost model's
  convention (own term 1, M D^-1 with D the diagonal of U^-1).
* ``"ghost"``: ``I_i(k) = Y_i(k) + sum_{j != i} H_ij(|k|) Y_j(k)`` with a ghost kind per receiving slice: low-pass
  ``H_ij = sum_s a_s G_s`` (a_s >= 0) or high-pass ``H_ij = sum_s b_s (1 - G_s)`` (zero at k = 0); 7 numbers per
  ghost. Chosen when ``ghost_kinds`` is given.

Isotropic, linear transfer functions are what propagation between slices produces in the weak-object limit; the
alphas of the paper are absorbed into the transfer functions (only their ratio to the own term is identifiable).

Estimate (:func:`estimate_mixing`). The weights minimise the DDIP's own prior, the multi-scale gradient exclusion,
of the unmixed images, summed over slice pairs: with the right mixing the slices share the fewest edges. The
exclusion is taken in its scale-invariant form (:func:`~.losses.exclusion_pairs` with ``gain``): at every scale
and direction both images' differences are rescaled to a mean absolute value of 4 before the tanh squash, so the
term counts where both slices have edges, whatever their strength, and no rescaling of a slice or added smooth
content can lower it. Adam, learning rate 0.005, 800 iterations, from U = 1 (direct) or a_s = 0.01, b_s = 0 (ghost).

Choices, measured on blends (docs/method.md) and on the reconstructions of the crosstalk benchmark
(studies/reconstruction_unmixing.py): the gain of 4; the widest basis blur of 6 px; the learning rate of 0.005; the
direct model as the default (as good as the ghost model with the right kinds on blends, and the only one of the two
that removes the leaks of reconstructions and needs no kinds).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from .losses import exclusion_pairs
from .model import default_ghost_kinds

DEFAULT_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
MODELS = ("direct", "ghost")
DEFAULT_GAIN = 4.0  # mean |difference| each image's gradients are rescaled to, per scale (losses.exclusion_pairs)
INIT_LOWPASS = 0.01  # starting weight of every low-pass basis blur (abs() needs a non-zero start to get a gradient)


def mirror_extend(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., 2H, 2W): the image and its mirror images (half-sample symmetric, as ``mode="reflect"``)."""
    x = torch.cat([x, x.flip(-1)], dim=-1)
    return torch.cat([x, x.flip(-2)], dim=-2)


def radial_frequency(shape: Sequence[int], device=None, dtype=torch.float64) -> torch.Tensor:
    """|k| in cycles per pixel on the real-FFT grid of an image of ``shape`` (torch.fft.rfft2's layout:
    (H, W // 2 + 1), fftfreq along y, rfftfreq along x)."""
    ky = torch.fft.fftfreq(int(shape[0]), device=device, dtype=dtype)[:, None]
    kx = torch.fft.rfftfreq(int(shape[1]), device=device, dtype=dtype)[None, :]
    return torch.sqrt(ky * ky + kx * kx)


def _spectrum(y: torch.Tensor) -> torch.Tensor:
    """Real-FFT spectrum of the mirror-extended images (..., 2H, W + 1)."""
    return torch.fft.rfft2(mirror_extend(y))


def _image(spec: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Back from :func:`_spectrum`'s layout, cropped to the original (H, W)."""
    h, w = int(shape[0]), int(shape[1])
    return torch.fft.irfft2(spec, s=(2 * h, 2 * w))[..., :h, :w]


def gaussian_basis(k: torch.Tensor, sigmas_px: Sequence[float]) -> torch.Tensor:
    """G_s(k) = exp(-2 pi^2 sigma_s^2 k^2) for every width (pixels): (S, *k.shape)."""
    s = torch.as_tensor([float(v) for v in sigmas_px], dtype=k.dtype, device=k.device)
    return torch.exp(-2.0 * math.pi**2 * s[:, None, None] ** 2 * k[None] ** 2)


def transfer_matrix(weights: torch.Tensor, basis: torch.Tensor, ghost_kinds: Sequence[str]) -> torch.Tensor:
    """The mixing matrix M(k) (N, N, h, w): 1 on the diagonal, H_ij(k) off it.

    ``weights`` (N, N, S) (the diagonal is ignored; low-pass rows enter as |a_s|), ``basis`` (S, h, w) from
    :func:`gaussian_basis`, ``ghost_kinds[i]`` the kind of ghost slice i receives.
    """
    n = weights.shape[0]
    rows = []
    for i in range(n):
        if ghost_kinds[i] == "lowpass":
            h = torch.einsum("js,shw->jhw", weights[i].abs(), basis)
        else:
            h = torch.einsum("js,shw->jhw", weights[i], 1.0 - basis)
        eye = torch.zeros(n, 1, 1, dtype=basis.dtype, device=basis.device)
        eye[i] = 1.0
        keep = torch.ones(n, 1, 1, dtype=basis.dtype, device=basis.device)
        keep[i] = 0.0
        rows.append(h * keep + eye)
    return torch.stack(rows)


def _apply(m: torch.Tensor, spectra: torch.Tensor) -> torch.Tensor:
    """sum_j m[i, j] * spectra[..., j, :, :] for every i."""
    return torch.einsum("ijhw,...jhw->...ihw", m.to(spectra.dtype), spectra)


def _inverse(m: torch.Tensor) -> torch.Tensor:
    """Per-frequency inverse of M (N, N, h, w); closed form for N = 2."""
    if m.shape[0] == 2:
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        return torch.stack([torch.stack([m[1, 1], -m[0, 1]]), torch.stack([-m[1, 0], m[0, 0]])]) / det
    return torch.linalg.inv(m.permute(2, 3, 0, 1)).permute(2, 3, 0, 1)


def apply_mixing(y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The mixed images I = M Y of clean images y (..., N, H, W) for a mixing matrix M (N, N, 2H, W + 1)."""
    return _image(_apply(m, _spectrum(y)), y.shape[-2:])


def ghost_terms(y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Every ghost H_ij Y_j, (..., N, N - 1, H, W) in the order j = 0..N-1 without i, of y (..., N, H, W)."""
    n = y.shape[-3]
    spec = _spectrum(y)
    out = []
    for i in range(n):  # slices and cat, not a list index: a list index of a CUDA tensor syncs with the host
        others = torch.cat([spec[..., :i, :, :], spec[..., i + 1:, :, :]], dim=-3)
        h = torch.cat([m[i, :i], m[i, i + 1:]], dim=0).to(spec.dtype)
        out.append(_image(others * h, y.shape[-2:]))
    return torch.stack(out, dim=-4)


def unmix_tensor(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The clean images Y = M^-1 I of mixed images x (..., N, H, W)."""
    return _image(_apply(_inverse(m), _spectrum(x)), x.shape[-2:])


def apply_unmixing(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The clean images Y = U I of mixed images x (..., N, H, W) for an unmixing matrix U (N, N, 2H, W + 1)."""
    return _image(_apply(u, _spectrum(x)), x.shape[-2:])


def direct_basis(k: torch.Tensor, sigmas_px: Sequence[float]) -> torch.Tensor:
    """The radial basis of the direct unmixing: an all-pass term and the Gaussian blurs G_s, (1 + S, *k.shape)."""
    return torch.cat([torch.ones(1, *k.shape, dtype=k.dtype, device=k.device), gaussian_basis(k, sigmas_px)])


def direct_unmixing(weights: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """U(k) = 1 + R(k) (N, N, h, w) of the direct model: ``R_ij = sum_b weights[i, j, b] basis_b`` off the diagonal
    (signed: all-pass, low-pass, high-pass = all-pass minus low-pass, band-pass, of either sign), 1 on it."""
    n = weights.shape[0]
    eye = torch.eye(n, dtype=basis.dtype, device=basis.device)[:, :, None, None]
    return eye + torch.einsum("ijb,bhw->ijhw", weights, basis) * (1.0 - eye)


@dataclass
class Mixing:
    """An estimated mixing (see the module docstring).

    Attributes
    ----------
    ghost_kinds : per slice, the kind of ghost it receives.
    sigmas_px : widths (pixels) of the Gaussian basis.
    weights : (N, N, S) basis weights; ``weights[i, j]`` make H_ij, the ghost of slice j on slice i (low-pass rows
        enter as absolute values); the diagonal is unused.
    loss : the criterion (exclusion of the normalised unmixed images) after every iteration.
    """

    ghost_kinds: tuple
    sigmas_px: tuple
    weights: np.ndarray
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model: str = "ghost"

    def _grid(self, shape: Sequence[int], device=None, dtype=torch.float64) -> torch.Tensor:
        return radial_frequency((2 * int(shape[0]), 2 * int(shape[1])), device=device, dtype=dtype)

    def _at(self, k: torch.Tensor, unmixing: bool) -> torch.Tensor:
        w = torch.as_tensor(self.weights, dtype=k.dtype, device=k.device)
        if self.model == "direct":
            # U = 1 + R gives M = U^-1 with a diagonal D != 1; in the ghost model's convention (own term 1, Y_i the
            # part of I_i that is slice i) the pair is M D^-1 and D U
            m = _inverse(direct_unmixing(w, direct_basis(k, self.sigmas_px)))
            d = torch.diagonal(m, dim1=0, dim2=1).permute(2, 0, 1)  # (N, h, w)
            m = m / d[None]
            return _inverse(m) if unmixing else m
        m = transfer_matrix(w, gaussian_basis(k, self.sigmas_px), self.ghost_kinds)
        return _inverse(m) if unmixing else m

    def matrix(self, shape: Sequence[int], device=None, dtype=torch.float64) -> torch.Tensor:
        """M(k) (N, N, 2H, W + 1) for images of ``shape`` (H, W) (the real-FFT grid of the mirror extension)."""
        return self._at(self._grid(shape, device, dtype), unmixing=False)

    def unmixing(self, shape: Sequence[int], device=None, dtype=torch.float64) -> torch.Tensor:
        """U(k) = M(k)^-1 (N, N, 2H, W + 1): the clean slices are Y = U I."""
        return self._at(self._grid(shape, device, dtype), unmixing=True)

    def profiles(self, k: np.ndarray) -> np.ndarray:
        """Radial transfer functions H_ij of M at frequencies ``k`` (cycles per pixel): (N, N, len(k)), diagonal 1."""
        m = self._at(torch.as_tensor(np.asarray(k, dtype=np.float64))[None, :], unmixing=False)
        return m[:, :, 0].numpy()

    def unmix(self, images: np.ndarray) -> np.ndarray:
        """Y = U I of images (N, H, W), in the images' units (float64)."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float64))
        return apply_unmixing(x, self.unmixing(x.shape[-2:])).numpy()

    def to_dict(self) -> dict:
        return {"model": self.model, "ghost_kinds": list(self.ghost_kinds), "sigmas_px": list(self.sigmas_px),
                "weights": np.asarray(self.weights).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Mixing":
        return cls(tuple(d["ghost_kinds"]), tuple(float(s) for s in d["sigmas_px"]),
                   np.asarray(d["weights"], dtype=np.float64), model=d.get("model", "ghost"))


def estimate_mixing(images: np.ndarray, ghost_kinds: Optional[Sequence[str]] = None,
                    sigmas_px: Sequence[float] = DEFAULT_SIGMAS, iters: int = 800, lr: float = 0.005,
                    gain: Optional[float] = DEFAULT_GAIN, blur_px: float = 0.0,
                    device: Optional[torch.device] = None, progress: bool = False,
                    model: Optional[str] = None) -> Mixing:
    """Estimate the mixing of ``images`` (N, H, W) without ground truth (module docstring).

    Parameters
    ----------
    images : (N, H, W) the contaminated slices (any units; z-scored jointly inside).
    ghost_kinds : ``model="ghost"``: per slice ``"lowpass"``/``"highpass"``, the ghost it receives; None = slice 1
        low-pass, the others high-pass (the paper's assignment).
    model : ``"direct"`` (signed unmixing filters, no ghost kinds) or ``"ghost"`` (ghost filters of the given kinds);
        None = ``"ghost"`` when ``ghost_kinds`` is given, else ``"direct"``.
    sigmas_px : widths (pixels) of the Gaussian basis of every transfer function.
    iters, lr : Adam iterations and learning rate.
    gain : the exclusion's gradient scale (``losses.exclusion_pairs(gain=)``); None = the DDIP code's exclusion of
        the unmixed slices normalised to zero mean and unit standard deviation (measured worse: section 14).
    blur_px : Gaussian blur (pixels, standard deviation) applied to the images for the estimate only. Every
        isotropic filter commutes with the mixing (both are per-frequency products), so the blurred images have the
        same mixing; the blur only removes noise-dominated fine scales from the criterion. 0 = none (default);
        about 1.5 px for noisy inputs (noise above ~3 % of the slices' range; docs/method.md
        section 14).
    device : where to compute (default CPU); float64 throughout.
    progress : progress display (see :mod:`ptycho_ddip.progress`).

    Returns
    -------
    Mixing

    Examples
    --------
    >>> from ptycho_ddip.phantoms import blend, make_phantom
    >>> b = blend(make_phantom("au-nio", (64, 64)).normalized())
    >>> mix = estimate_mixing(b.inputs, iters=50)
    >>> mix.model, mix.weights.shape
    ('direct', (2, 2, 8))
    >>> estimate_mixing(b.inputs, ("lowpass", "highpass"), iters=50).weights.shape
    (2, 2, 7)
    """
    from ..progress import progress_iter

    x = torch.as_tensor(np.asarray(images, dtype=np.float64), device=device)
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"estimate_mixing needs (N >= 2, H, W) images, got shape {tuple(x.shape)}")
    n, h, w = x.shape
    model = model or ("ghost" if ghost_kinds is not None else "direct")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    kinds = tuple(ghost_kinds) if ghost_kinds is not None else default_ghost_kinds(n)
    if len(kinds) != n:
        raise ValueError(f"ghost_kinds needs {n} entries, got {kinds}")
    if model == "direct":
        kinds = ("direct",) * n
    if not len(sigmas_px) or min(sigmas_px) <= 0:
        raise ValueError(f"sigmas_px must be positive widths in pixels, got {sigmas_px}")
    if not blur_px >= 0:
        raise ValueError(f"blur_px must be >= 0, got {blur_px}")
    x = (x - x.mean()) / x.std()
    spec = _spectrum(x)
    k = radial_frequency((2 * h, 2 * w), device=x.device)
    basis = gaussian_basis(k, sigmas_px)
    if blur_px > 0:
        spec = spec * gaussian_basis(k, (blur_px,))[0]
    if model == "direct":  # U = 1 + R, R from 0: the estimate starts at the inputs themselves
        dbasis = direct_basis(k, sigmas_px)
        init = torch.zeros(n, n, dbasis.shape[0], dtype=torch.float64, device=x.device)

        def unmixing(wt: torch.Tensor) -> torch.Tensor:
            return direct_unmixing(wt, dbasis)
    else:
        init = torch.zeros(n, n, len(sigmas_px), dtype=torch.float64, device=x.device)
        for i, kind in enumerate(kinds):
            if kind == "lowpass":
                init[i] = INIT_LOWPASS

        def unmixing(wt: torch.Tensor) -> torch.Tensor:
            return _inverse(transfer_matrix(wt, basis, kinds))
    weights = init.clone().requires_grad_(True)
    first = [i for i in range(n) for j in range(i + 1, n)]
    second = [j for i in range(n) for j in range(i + 1, n)]
    optim = torch.optim.Adam([weights], lr=lr)
    history = torch.empty(iters, dtype=torch.float64, device=x.device)  # on the device: no host sync per step
    for it in progress_iter(range(iters), desc="mixing estimate", enabled=progress, unit="iteration"):
        y = _image(_apply(unmixing(weights), spec), (h, w))
        if gain is None:
            y = y - y.mean(dim=(-2, -1), keepdim=True)
            y = y / (y.std(dim=(-2, -1), keepdim=True) + 1e-12)
        loss = exclusion_pairs(y[None, first], y[None, second], gain=gain).sum()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        history[it] = loss.detach()
    mixing = Mixing(kinds, tuple(float(s) for s in sigmas_px), weights.detach().cpu().numpy(),
                    history.cpu().numpy(), model)
    _warn_if_degenerate(mixing, images)
    return mixing


#: the estimate warns when it lowers its criterion by less than this factor (measured on 64 x 64 blends, 400
#: iterations: 0.60 / 0.78 with the right ghost kinds on au-nio / zp-nio, 0.87 / 0.97 with them swapped)
WEAK_ESTIMATE = 0.85
#: ... checked only for estimates of at least this many iterations (shorter ones have not converged)
WEAK_CHECK_ITERS = 200


def _warn_if_degenerate(mixing: Mixing, images: np.ndarray) -> None:
    """Warn when the estimate looks like a runaway (a near-singular mixing, or an unmixed slice that no longer
    resembles its own input), or when it barely lowers its criterion (ghost kinds that do not fit the data)."""
    x = np.asarray(images, dtype=np.float64)
    det = lambda m: np.abs(np.linalg.det(np.moveaxis(m.numpy(), (0, 1), (-2, -1))))  # noqa: E731
    det_min = float(min(det(mixing.matrix(x.shape[-2:])).min(), det(mixing.unmixing(x.shape[-2:])).min()))
    y = mixing.unmix(x)
    corr = [float(np.corrcoef(y[i].ravel(), x[i].ravel())[0, 1]) for i in range(x.shape[0])]
    if det_min < 0.1 or min(corr) < 0.3:
        warnings.warn(f"the estimated mixing looks degenerate (smallest determinant {det_min:.3f}, correlation of "
                      f"the unmixed slices with their inputs {', '.join(f'{c:.2f}' for c in corr)}); check the "
                      "ghost kinds (--ghost-kinds) or use the learnable mixing (--method paper)", stacklevel=3)
    elif (mixing.model == "ghost" and len(mixing.loss) >= WEAK_CHECK_ITERS
          and mixing.loss[-1] > WEAK_ESTIMATE * mixing.loss[0]):
        kinds = ",".join(mixing.ghost_kinds)
        warnings.warn(f"the estimated mixing removes little shared structure (exclusion {mixing.loss[0]:.4f} -> "
                      f"{mixing.loss[-1]:.4f}): the ghost kinds ({kinds}) may not match the data; try another "
                      f"--ghost-kinds (e.g. {','.join(reversed(mixing.ghost_kinds))}) or --method paper",
                      stacklevel=3)
