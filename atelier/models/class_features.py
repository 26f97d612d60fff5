"""A feature network for real pictures, trained here to name them: the Inception of their FID.

FID and KID need features that summarise what matters in a picture. Inception's are those of
an ImageNet classifier; with no such weights here, this network is trained on a real set's own
labels, one linear head per labelling (for emoji: which emoji it is, and its category).

The FID features are the last convolutional stage averaged over positions, as Inception's pool3
is, not the linear layer before the heads. On emoji, that layer learned the 1,737 training
names (about two pictures each) so tightly that it told names apart and little else: against
the held-out emoji, training pictures scored FID 2,052 there and the same pictures in grey
2,560, only 1.25x as far. The pooled stage puts the grey ones 15x as far as the floor, blurred
(5 x 5) 1.4x (``bench/feature_spaces.py``, ``bench/results/feature-spaces``).

Notation: B images, S = ``image_size``; three stages of two 3x3 convolutions (the second of
stride 2) take (B, 3, S, S) to (B, C3, S / 8, S / 8); averaged over positions these are the FID
features (B, C3); a linear layer makes the heads' features (B, F), and head k the logits
(B, K_k).
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


@dataclass(frozen=True)
class ClassFeatureConfig:
    """Sizes: ``image_size`` (a multiple of 8), the three stages' ``channels``, the width of the
    ``features``, and ``classes``, the number of classes of each head (set from the data)."""

    image_size: int = 64
    channels: tuple[int, int, int] = (32, 64, 128)
    feature_dim: int = 256
    classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "classes", tuple(self.classes))
        check_trunk(self.image_size, self.channels, self.feature_dim)
        if any(k < 2 for k in self.classes):
            raise ValueError(f"every head needs at least 2 classes, got {self.classes}")


class ClassFeatureNet(nn.Module):
    """Images (B, 3, S, S) in [-1, 1] -> FID features (B, C3); ``logits`` gives the heads'."""

    def __init__(self, config: ClassFeatureConfig) -> None:
        super().__init__()
        if not config.classes:
            raise ValueError("a class feature network needs at least one head (classes)")
        self.config = config
        self.stages = nn.Sequential(*downsampling_stages(3, config.channels))
        self.features = feature_layer(config.channels[-1], config.image_size // 8,
                                      config.feature_dim)  # fmt: skip
        self.heads = nn.ModuleList(nn.Linear(config.feature_dim, k) for k in config.classes)

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        check_images(images, 3, size, "the feature network", f"resize to {size} px first")
        return self.stages(images)  # (B, C3, S / 8, S / 8)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._maps(images).mean((2, 3))  # (B, C3)

    def logits(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One (B, K_k) tensor of logits per head."""
        features = self.features(self._maps(images))  # (B, F)
        return [head(features) for head in self.heads]
