"""The convolutional trunk the small image networks here share (the shapes and emoji feature
networks of FID, the digit classifier): stages of two 3x3 convolutions, the second of stride 2,
each followed by GroupNorm(8) and SiLU, then a linear layer to the features.

Notation: B images, S the side; N stages take (B, C_in, S, S) to (B, C_N, S / 2^N, S / 2^N),
and the feature layer that to (B, F).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def downsampling_stage(c_in: int, c_out: int) -> nn.Sequential:
    """One stage: (B, c_in, S, S) -> (B, c_out, S / 2, S / 2)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
    )  # fmt: skip


def downsampling_stages(c_in: int, channels: Sequence[int]) -> list[nn.Sequential]:
    """A stage per entry of ``channels``, the first reading ``c_in`` channels."""
    widths = [c_in, *channels]
    return [downsampling_stage(a, b) for a, b in zip(widths, widths[1:])]


def feature_layer(channels: int, side: int, feature_dim: int) -> nn.Sequential:
    """(B, channels, side, side) -> (B, feature_dim): flatten, linear, SiLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, feature_dim), nn.SiLU())


def check_trunk(image_size: int, channels: Sequence[int], feature_dim: int) -> None:
    """Refuse sizes three stages cannot take: a side that is not a multiple of 8, stage widths
    that are not three multiples of 8 (GroupNorm's 8 groups), a feature width below 1."""
    if image_size < 8 or image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
    if len(channels) != 3 or min(channels) < 8 or any(c % 8 for c in channels):
        raise ValueError(f"channels must be three multiples of 8, got {tuple(channels)}")
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive, got {feature_dim}")


def check_images(images: torch.Tensor, channels: int, size: int, what: str, fix: str) -> None:
    """Refuse anything but (B, channels, size, size), naming ``what`` takes it and the ``fix``."""
    if images.ndim != 4 or images.shape[1:] != (channels, size, size):
        raise ValueError(f"{what} takes (B, {channels}, {size}, {size}) images, got "
                         f"{tuple(images.shape)}; {fix}")  # fmt: skip
