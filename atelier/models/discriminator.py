"""A PatchGAN discriminator (Isola et al., 2017) for the autoencoder's optional adversarial loss.

Notation: x (B, C, H, W) an image, K = ``channels`` the first layer's width, n = ``layers`` the
number of stride-2 convs. Instead of one real/fake score per image, the network scores every
overlapping patch it sees: n stride-2 4x4 convs (widths K, 2K, 4K, ... capped at 8K), one
stride-1 4x4 conv, then a stride-1 4x4 conv to one logit per patch, so the output is
(B, 1, H/2^n - 2, W/2^n - 2). With n = 3 each logit sees a 70 x 70 pixel patch; judging local
texture only is what pushes the decoder to sharp edges while the reconstruction loss takes care
of the layout. This is the ``NLayerDiscriminator`` that the Stable Diffusion autoencoder was
trained against (Esser et al., 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

PatchNorm = Literal["batch", "group"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of a :class:`PatchDiscriminator`.

    ``norm="batch"`` is the original; ``"group"`` (32 groups, or one per channel when narrower)
    does not depend on the batch, which is steadier at the small batches a CPU trains with.
    """

    in_channels: int = 3
    channels: int = 64
    layers: int = 3
    norm: PatchNorm = "batch"

    def __post_init__(self) -> None:
        for name in ("in_channels", "channels", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")

    @property
    def min_size(self) -> int:
        """The smallest H and W that still give one patch logit."""
        return 3 * 2**self.layers


def _norm(kind: PatchNorm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(32, channels), channels)


class PatchDiscriminator(nn.Module):
    """Real/fake logits for every patch: x (B, C, H, W) -> (B, 1, H/2^n - 2, W/2^n - 2)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        k = config.channels
        # No norm on the first layer, and no conv bias before a norm (the norm has its own shift).
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, k, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = k
        for i in range(1, config.layers + 1):
            previous, width = width, k * min(2**i, 8)
            stride = 2 if i < config.layers else 1
            layers += [
                nn.Conv2d(previous, width, 4, stride=stride, padding=1, bias=False),
                _norm(config.norm, width),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self) -> None:
        # DCGAN's initialisation (Radford et al., 2016), which the PatchGAN recipes were tuned for.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        if x.ndim != 4 or x.shape[1] != config.in_channels:
            raise ValueError(f"x must be (B, {config.in_channels}, H, W), got {tuple(x.shape)}")
        if min(x.shape[2:]) < config.min_size:
            raise ValueError(
                f"a {config.layers}-layer PatchGAN needs H and W >= {config.min_size}, "
                f"got {tuple(x.shape[2:])}"
            )
        return self.main(x)  # (B, 1, H/2^n - 2, W/2^n - 2)
