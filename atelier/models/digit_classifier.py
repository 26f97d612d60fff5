"""A small convolutional classifier of handwritten digits: the judge of generated digits.

A digits model draws "a handwritten 7"; this network, trained on real MNIST digits
(``atelier train mnist-classifier``), reads what it drew, so the share read as the digit asked
for is a score a program computes. Its penultimate layer doubles as the feature space of a
digits FID, as ``models/shapes_features.py`` is for the shapes world.

LeNet's shape (LeCun et al. 1998) with today's parts: three stages of two 3x3 convolutions, the
second of stride 2, each with GroupNorm and SiLU, then a linear layer to features and one to
the 10 logits. Notation: B images, S = ``image_size``; the stages take (B, 1, S, S) to
(B, C3, S / 8, S / 8). Input: grayscale in [-1, 1], ink at +1 (MNIST's white strokes on black).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from atelier.models.conv_trunk import (
    check_images,
    check_trunk,
    downsampling_stages,
    feature_layer,
)

N_DIGITS = 10


@dataclass(frozen=True)
class DigitClassifierConfig:
    """Sizes: ``image_size`` (a multiple of 8), the three stages' ``channels``, the width of
    the ``features``, and the ``dropout`` before the logits while training."""

    image_size: int = 32
    channels: tuple[int, int, int] = (16, 32, 64)
    feature_dim: int = 128
    dropout: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        check_trunk(self.image_size, self.channels, self.feature_dim)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class DigitClassifier(nn.Module):
    """Images (B, 1, S, S) in [-1, 1] -> logits (B, 10); ``features`` gives the layer before."""

    def __init__(self, config: DigitClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.stages = nn.Sequential(*downsampling_stages(1, config.channels))
        self.to_features = feature_layer(config.channels[-1], config.image_size // 8,
                                         config.feature_dim)  # fmt: skip
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, N_DIGITS)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, F) features of (B, 1, S, S) images."""
        size = self.config.image_size
        check_images(images, 1, size, "the digit classifier (grayscale)",
                     "convert and resize first (eval/digits.py does)")  # fmt: skip
        return self.to_features(self.stages(images))  # (B, F)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))  # (B, 10)
