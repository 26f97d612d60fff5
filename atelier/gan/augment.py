"""Differentiable augmentation for the discriminator (DiffAugment; Zhao et al., 2020).

A discriminator that sees a few thousand images memorises them and stops teaching the
generator. DiffAugment shows it every image, real or generated, through the same random
transforms T and trains on D(T(x)) and D(T(G(z))). T is differentiable, so G's gradient passes
through it, and because both sides are transformed alike G is still pushed toward the
untransformed data (it cannot win by drawing augmented-looking images).

Policies (:data:`POLICIES`), each with the paper's ranges, on images in [-1, 1]:

- ``translation``: shift by up to 1/8 of the side in each direction, zero padding;
- ``color``: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5).

In the shapes world colour and position are what captions state, so both transforms can blur
what the discriminator must check; the recipe leaves augmentation off until an A/B shows it
helps at this data size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F

AugmentName = Literal["translation", "color"]
POLICIES: tuple[str, ...] = get_args(AugmentName)


def _uniform(x: torch.Tensor, low: float, high: float, generator: torch.Generator | None):
    """U(low, high), one draw per image, shaped (B, 1, 1, 1) to broadcast over x."""
    u = torch.rand((x.shape[0], 1, 1, 1), generator=generator)
    return (low + (high - low) * u).to(x)


def translate(
    x: torch.Tensor, *, ratio: float = 0.125, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image (B, C, H, W) by whole pixels, up to ``ratio`` of its side each way;
    uncovered pixels are 0."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=generator).to(x.device)
    padded = F.pad(x, (sw, sw, sh, sh)).permute(0, 2, 3, 1)  # (B, H + 2 sh, W + 2 sw, C)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy + sh  # (B, H, 1)
    cols = torch.arange(w, device=x.device)[None, None, :] + dx + sw  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


def color(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, saturation and contrast per image (B, 3, H, W)."""
    x = x + _uniform(x, -0.5, 0.5, generator)
    grey = x.mean(1, keepdim=True)
    x = (x - grey) * _uniform(x, 0.0, 2.0, generator) + grey
    level = x.mean((1, 2, 3), keepdim=True)
    return (x - level) * _uniform(x, 0.5, 1.5, generator) + level


def diff_augment(
    x: torch.Tensor, policy: Sequence[AugmentName], *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x`` (B, 3, H, W) through every transform of ``policy``, in the paper's order (colour,
    then translation); an empty policy returns ``x`` itself."""
    unknown = [name for name in policy if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; valid: {', '.join(POLICIES)}")
    if "color" in policy:
        x = color(x, generator=generator)
    if "translation" in policy:
        x = translate(x, generator=generator)
    return x
