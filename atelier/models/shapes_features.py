"""A feature network for the shapes world, trained here: the Inception of our FID.

FID and KID need an image network whose features summarise what matters in a picture. With no
downloadable Inception, atelier trains one on the shapes world with full supervision: for each
of the 9 grid cells it classifies what the cell holds, one of 6 colours x 3 shapes x 2 sizes
or nothing (37 classes). The features are the 256-wide layer before those heads, so they encode
exactly the attributes shapes-bench asks about, at every position.

Notation: B images, S = ``image_size``; a stride-2 convolution stack takes S to S / 8, then a
linear layer makes the features (B, F) and the heads the logits (B, 9, 37).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from atelier.models.conv_trunk import check_images, downsampling_stages, feature_layer
from atelier.shapes.world import COLORS, SHAPES, SceneSpec

SIZES = ("small", "large")
EMPTY = len(COLORS) * len(SHAPES) * len(SIZES)  # class index of an empty cell: 36
N_CLASSES = EMPTY + 1
N_CELLS = 9


def cell_targets(spec: SceneSpec) -> torch.Tensor:
    """(9,) class per cell (row-major), from a full spec (every object with size and cell)."""
    target = torch.full((N_CELLS,), EMPTY, dtype=torch.long)
    for obj in spec.objects:
        if obj.cell is None or obj.size is None:
            raise ValueError("cell targets need a full spec: every object with a size and a cell")
        k = (COLORS.index(obj.color) * len(SHAPES) + SHAPES.index(obj.shape)) * 2
        target[obj.cell[0] * 3 + obj.cell[1]] = k + SIZES.index(obj.size)
    return target


@dataclass(frozen=True)
class ShapesFeatureConfig:
    image_size: int = 32
    channels: tuple[int, int, int] = (32, 64, 128)
    feature_dim: int = 256

    def __post_init__(self) -> None:
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")
        if min(self.channels) < 1 or self.feature_dim < 1:
            raise ValueError("channels and feature_dim must be positive")


class ShapesFeatureNet(nn.Module):
    """Images (B, 3, S, S) in [-1, 1] -> features (B, F); ``classify`` adds the cell heads."""

    def __init__(self, config: ShapesFeatureConfig) -> None:
        super().__init__()
        self.config = config
        # The stages' layers in one flat Sequential (convs.0 .. convs.17): the keys of the
        # feature networks trained before the trunk was shared.
        stages = downsampling_stages(3, config.channels)
        self.convs = nn.Sequential(*(layer for stage in stages for layer in stage))
        self.features = feature_layer(config.channels[-1], config.image_size // 8,
                                      config.feature_dim)  # fmt: skip
        self.heads = nn.Linear(config.feature_dim, N_CELLS * N_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        check_images(images, 3, size, "the feature network", f"resize to {size} px first")
        return self.features(self.convs(images))  # (B, F)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, 9, 37) of each cell's content."""
        return self.heads(self(images)).view(-1, N_CELLS, N_CLASSES)
