"""Small random affine moves of training images: a picture drawn a little off-centre, tilted or
resized is still the same picture. The digit judge trains on moved digits so that it reads a
generator's imperfect ones; the real-set CLIP and feature network on moved pictures so that a
few thousand of them go further."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, generator: torch.Generator, *, degrees: float = 10.0,
                  scale: float = 0.1, shift: float = 2.0,
                  background: float = -1.0) -> torch.Tensor:  # fmt: skip
    """(B, C, S, S) in [-1, 1], each rotated by up to ``degrees``, scaled by 1 +- ``scale`` and
    shifted by up to ``shift`` px, the uncovered border ``background`` (-1 black, +1 white)."""
    b, _, s, _ = images.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator)

    angle = uniform(-degrees, degrees) * math.pi / 180
    zoom = uniform(1 - scale, 1 + scale)
    tx, ty = (uniform(-shift, shift) * 2 / s for _ in range(2))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, S, S, 2)
    # Shift the background to 0 so that grid_sample's zero padding is the background, then back.
    moved = F.grid_sample(images - background, grid, mode="bilinear", align_corners=False)
    return moved + background


def affine_jitter(seed: int, *, background: float, degrees: float = 5.0, scale: float = 0.1,
                  shift: float = 3.0) -> Callable[[torch.Tensor, int], torch.Tensor]:  # fmt: skip
    """A training task's augmentation: ``(images, step) -> moved images``, each step's moves
    drawn from (``seed``, step), so a resumed run moves its batches as the killed one would."""

    def jitter(images: torch.Tensor, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return random_affine(images, generator, degrees=degrees, scale=scale, shift=shift,
                             background=background)  # fmt: skip

    return jitter
