"""The conditioning of super-resolution diffusion: degrade, upsample, noise-augment.

Used alike by training (``training/sr_task.py``) and sampling (``pipelines/upscale.py``), so the
two see exactly the same conditioning image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
