"""The conditioning of super-resolution diffusion: degrade, upsample, noise-augment.

Used alike by training (``training/sr_task.py``) and sampling (``pipelines/upscale.py``), so the
two see exactly the same conditioning image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.parameterization import q_sample


def degrade(hi: torch.Tensor, low: int) -> torch.Tensor:
    """High-resolution images (B, 3, S, S) -> their ``low`` px version (area average)."""
    return F.interpolate(hi, size=(low, low), mode="area")


def upsample(lo: torch.Tensor, size: int) -> torch.Tensor:
    """Low-resolution images -> bicubic upsampling to ``size``, clamped to [-1, 1]."""
    return F.interpolate(lo, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def augment(
    up: torch.Tensor,
    level: torch.Tensor,
    abar: torch.Tensor,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The conditioning image noised to integer ``level`` (B,) of the schedule (0 = clean),
    with ``noise`` (fresh standard noise if not given)."""
    if noise is None:
        noise = torch.randn_like(up)
    a = abar.to(up.device)[level].to(up.dtype)
    noised = q_sample(up, a, noise)
    keep = (level == 0).view(-1, 1, 1, 1)
    return torch.where(keep, up, noised)


def project_to_low(x0: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """The image nearest ``x0`` (B, 3, S, S) whose ``degrade`` is exactly ``lo`` (B, 3, s, s):
    add each low-resolution pixel's residual to its whole block (DDNM's range-space correction,
    Wang et al. 2022, for the area-average degradation). High frequencies stay the model's; the
    block means, colour included, become the input's."""
    factor = x0.shape[-1] // lo.shape[-1]
    if x0.shape[-1] != lo.shape[-1] * factor or x0.shape[-2] != lo.shape[-2] * factor:
        raise ValueError(f"{tuple(x0.shape)} is not a whole multiple of {tuple(lo.shape)}")
    residual = lo.to(x0) - degrade(x0, lo.shape[-1])
    return x0 + F.interpolate(residual, scale_factor=factor, mode="nearest")


def consistent_with(denoiser: Denoiser, lo: torch.Tensor) -> Denoiser:
    """Wrap a denoiser so that every x_0 estimate is projected onto the images that degrade to
    ``lo``: a sampler that ends on an x_0 estimate then returns an image whose area average is
    the low-resolution input, exactly."""

    def wrapped(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return project_to_low(denoiser(x, sigma, t), lo)

    return wrapped
