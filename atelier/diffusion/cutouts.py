"""Cutouts: the random crops through which CLIP looks at an image while steering it.

CLIP-guided diffusion and VQGAN-CLIP (Crowson 2021) never show CLIP the whole image alone: they
show it ``count`` random square crops resized to CLIP's input side S_c, each augmented, and
average CLIP's verdicts. A gradient through many views is less easily satisfied by adversarial
pixel noise than one through a single view.

Notation: an image (C, H, W) in [-1, 1]; a cutout k is the square of side s_k at (top_k, left_k),

    s_k = floor(u_k^p (s_max - s_min) + s_min),   u_k ~ U(0, 1),
    top_k ~ U{0 .. H - s_k},   left_k ~ U{0 .. W - s_k},

with p the cut power (p > 1 favours small crops, p < 1 large ones), s_max = min(H, W) and
s_min = min(H, W, S_c) times ``min_fraction`` of the side when the image is larger. With
``overview`` the first cutout is the whole image (Disco Diffusion's overview cut): in the shapes
world, where a prompt states positions and counts, one view must see the layout entire.

Augmentations are those that keep a shapes prompt true: a small translation (edge-replicated,
so the background stays white) and Gaussian pixel noise of a random strength per cutout
(VQGAN-CLIP's noise factor). Flips and hue jitter are left out: they change "left of" and
"red". Every draw for an image comes from its own generator, so a batch equals its singles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CutoutOptions:
    """How many cutouts of which sizes, and how they are augmented."""

    count: int = 8  # cutn
    cut_power: float = 1.0  # cut_pow
    overview: bool = True  # the first cutout is the whole image
    min_fraction: float = 0.5  # s_min as a fraction of the image side
    translate: float = 0.05  # largest shift, a fraction of the cutout side
    noise: float = 0.1  # largest std of the added pixel noise

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"cutouts must be a positive integer, got {self.count!r}")
        if not (math.isfinite(self.cut_power) and self.cut_power > 0):
            raise ValueError(f"cut power must be a positive number, got {self.cut_power!r}")
        if not 0 < self.min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {self.min_fraction!r}")
        if not 0 <= self.translate < 0.5:
            raise ValueError(f"translate must be in [0, 0.5), got {self.translate!r}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a number >= 0, got {self.noise!r}")


def cutout_boxes(
    height: int, width: int, *, cut_size: int, options: CutoutOptions, generator: torch.Generator
) -> list[tuple[int, int, int]]:
    """``options.count`` boxes (top, left, side) inside an H x W image, drawn from ``generator``."""
    s_max = min(height, width)
    s_min = min(s_max, max(cut_size, math.ceil(options.min_fraction * s_max)))
    boxes = [(0, 0, -1)] if options.overview else []  # side -1: the whole (maybe oblong) image
    while len(boxes) < options.count:
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        side = int(u**options.cut_power * (s_max - s_min) + s_min)
        top = int(torch.randint(height - side + 1, (), generator=generator))
        left = int(torch.randint(width - side + 1, (), generator=generator))
        boxes.append((top, left, side))
    return boxes


def _resize(crop: torch.Tensor, size: int) -> torch.Tensor:
    """(C, h, w) -> (C, size, size): area averaging down (Crowson's adaptive pooling), bilinear
    up; both differentiable."""
    if min(crop.shape[-2:]) >= size:
        return F.adaptive_avg_pool2d(crop, size)
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(C, S, S) moved by (dy, dx) pixels, the edge replicated into what it uncovers."""
    if dy == 0 and dx == 0:
        return image
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))  # left, right, top, bottom
    padded = F.pad(image[None], pad, mode="replicate")[0]
    s_h, s_w = image.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top : top + s_h, left : left + s_w]


def make_cutouts(
    image: torch.Tensor, *, cut_size: int, options: CutoutOptions, generator: torch.Generator
) -> torch.Tensor:
    """One image (C, H, W) -> its augmented cutouts (count, C, cut_size, cut_size)."""
    if image.ndim != 3:
        raise ValueError(f"make_cutouts takes one image (C, H, W), got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    cuts = []
    boxes = cutout_boxes(height, width, cut_size=cut_size, options=options, generator=generator)
    for top, left, side in boxes:
        crop = image if side < 0 else image[:, top : top + side, left : left + side]
        cut = _resize(crop, cut_size)
        reach = int(options.translate * cut_size)
        if reach:
            dy, dx = torch.randint(-reach, reach + 1, (2,), generator=generator).tolist()
            cut = _shift(cut, dy, dx)
        if options.noise:
            std = float(torch.rand((), generator=generator)) * options.noise
            eps = torch.randn(cut.shape, generator=generator, dtype=cut.dtype)
            cut = cut + std * eps.to(cut.device)
        cuts.append(cut)
    return torch.stack(cuts)  # (count, C, S_c, S_c)
