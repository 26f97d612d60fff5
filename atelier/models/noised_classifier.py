"""A noise-aware classifier of the shapes world's cells (ADM; Dhariwal & Nichol 2021).

Classifier guidance needs log p(y | x_t, t) at every noise level, so the classifier reads a
diffusion model's VP latent x_t and timestep t (ADM's classifier is its UNet's encoder half; this
is a small one). It says, for each of the 9 grid cells, what the cell holds as three independent
attributes, each with "empty" as class 0:

    colour  (7: empty, red, yellow, green, cyan, blue, purple)
    shape   (4: empty, circle, square, triangle)
    size    (3: empty, small, large)

Factorised heads, rather than one class per colour-shape pair, can name the world's held-out
pairs (a purple triangle), which no training scene shows together.

Notation: x_t (B, C, h, w), t (B,), K = 7 the widest head. The logits come as (B, 27, K): head
3 c + a is attribute a (colour, shape, size) of cell c (row-major), a head narrower than K padded
with -inf, which :func:`~atelier.diffusion.guidance.class_log_likelihood` reads directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from atelier.models.unet import Downsample, EmbeddingMLP, ResBlock, timestep_embedding
from atelier.shapes.world import COLORS, SHAPES, SIZES, SceneSpec

N_CELLS = 9
ATTRIBUTES = ("colour", "shape", "size")
CLASSES = (1 + len(COLORS), 1 + len(SHAPES), 1 + len(SIZES))  # (7, 4, 3), empty first
WIDEST = max(CLASSES)
N_HEADS = N_CELLS * len(ATTRIBUTES)


def cell_attribute_targets(spec: SceneSpec, *, free: int = -1) -> torch.Tensor:
    """(27,) classes of each cell's colour, shape and size (0 for an empty cell) from a spec
    whose objects all have cells; an object without a size leaves its size head ``free``."""
    target = torch.zeros(N_CELLS, len(ATTRIBUTES), dtype=torch.long)
    for obj in spec.objects:
        if obj.cell is None:
            raise ValueError("cell targets need every object's cell")
        cell = obj.cell[0] * 3 + obj.cell[1]
        size = free if obj.size is None else 1 + SIZES.index(obj.size)
        target[cell] = torch.tensor(
            [1 + COLORS.index(obj.color), 1 + SHAPES.index(obj.shape), size]
        )
    return target.flatten()


@dataclass(frozen=True)
class NoisedClassifierConfig:
    """Sizes; ``in_channels`` and ``image_size`` are the latent's (4 and 16 for the default)."""

    in_channels: int = 4
    image_size: int = 16
    channels: tuple[int, ...] = (64, 128)
    groups: int = 32
    hidden: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.in_channels < 1 or self.hidden < 1 or not self.channels:
            raise ValueError("in_channels, hidden and channels must be positive")
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"channels {self.channels} must be multiples of groups "
                             f"{self.groups}")  # fmt: skip
        levels = len(self.channels)
        if self.image_size % 2**levels:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {2**levels} "
                             f"for {levels} levels")  # fmt: skip


class NoisedShapesClassifier(nn.Module):
    """``classifier(x_t, t) -> logits (B, 27, 7)``: each cell's colour, shape and size."""

    def __init__(self, config: NoisedClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.channels[0]
        self.time_embedding = EmbeddingMLP(c0, 4 * c0)
        self.conv_in = nn.Conv2d(config.in_channels, c0, 3, padding=1)
        blocks, downs, c_in = [], [], c0
        for c in config.channels:
            blocks.append(ResBlock(c_in, c, time_dim=4 * c0, groups=config.groups,
                                   time_injection="scale_shift"))  # fmt: skip
            downs.append(Downsample(c))
            c_in = c
        self.blocks, self.downs = nn.ModuleList(blocks), nn.ModuleList(downs)
        self.norm_out = nn.GroupNorm(config.groups, c_in)
        side = config.image_size // 2 ** len(config.channels)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, config.hidden),
                                    nn.SiLU())  # fmt: skip
        self.heads = nn.Linear(config.hidden, N_CELLS * sum(CLASSES))
        self.register_buffer("pad", torch.tensor(float("-inf")), persistent=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c, s = self.config.in_channels, self.config.image_size
        if x_t.ndim != 4 or x_t.shape[1:] != (c, s, s):
            raise ValueError(f"the classifier takes (B, {c}, {s}, {s}) latents, "
                             f"got {tuple(x_t.shape)}")  # fmt: skip
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        emb = self.time_embedding(timestep_embedding(t, self.config.channels[0]).to(x_t.dtype))
        h = self.conv_in(x_t)
        for block, down in zip(self.blocks, self.downs):
            h = down(block(h, emb))  # (B, C_l, s / 2^(l+1), ...)
        h = self.hidden(nn.functional.silu(self.norm_out(h)))  # (B, hidden)
        raw = self.heads(h).view(-1, N_CELLS, sum(CLASSES))  # (B, 9, 14)
        parts = raw.split(CLASSES, dim=-1)
        padded = [
            torch.cat([p, self.pad.to(p.dtype).expand(*p.shape[:-1], WIDEST - p.shape[-1])], -1)
            for p in parts
        ]  # 3 x (B, 9, 7)
        return torch.stack(padded, dim=2).reshape(-1, N_HEADS, WIDEST)  # (B, 27, 7)
