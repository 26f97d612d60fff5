"""DF-GAN's discriminator (Tao et al., 2022): image features, then one joint image-text head.

Notation: x (B, 3, R, R) an image, s_hat (B, P) a sentence vector rescaled as the generator
sees it (:func:`~atelier.models.gan_generator.sentence_features`), K = ``channels``. A 3 x 3
conv lifts x to K channels; log2(R / 4) :class:`DownBlock`\\ s halve the side and double the
width (capped at 8K) down to features f (B, 8K, 4, 4). The :class:`JointHead` tiles s_hat over
the 4 x 4 map, concatenates it to f, and a 3 x 3 conv, LeakyReLU and a 4 x 4 conv give one
logit D(x, s) that x is real *and* matches s.

The caller rescales the sentence, not the head: the gradient penalty then differentiates
against what the head reads. Against MiniLM's unit vector, the rescaling's Jacobian (sqrt(P)
= 20 times) would make MA-GP (a sixth power of the gradient norm) start in the thousands.

Judging the pair rather than the image (DF-GAN's one-way output, section 3.3) is what lets
mismatched captions be negatives: a real image with another caption, or with its own caption
one fact changed, must score low. The image features do not depend on the text, so a training
step computes f once per image and judges it against several sentences (:meth:`features`,
:meth:`judge`).

Two options make D see shapes from the first step rather than learning to after thousands:
``residual_gain`` starts every block's gamma there (DF-GAN's 0 leaves a fresh D a linear map of
16 x 16 px colour averages, against which shapes-gan's generator drew one colour blob for
every caption at step 500), and ``spectral_norm`` divides every conv's weight by its largest
singular value (Miyato et al., 2018; one power iteration per training call), which bounds D's
Lipschitz constant by construction, where the gradient penalties need a second backward pass.

No normalisation layer mixes samples, so each logit depends on its own pair only, which the
gradient penalties of ``gan/losses.py`` rely on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class JointDiscriminatorConfig:
    """Sizes of a :class:`JointDiscriminator`; ``sentence_dim`` is the text encoder's pooled
    width."""

    resolution: int = 64
    channels: int = 32
    max_mult: int = 8
    sentence_dim: int = 384
    residual_gain: float = 0.0
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        side = self.resolution
        if side < 8 or side & (side - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {side}")
        for name in ("channels", "max_mult", "sentence_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def blocks(self) -> int:
        return int(math.log2(self.resolution // 4))

    def width(self, level: int) -> int:
        """Channels after ``level`` down blocks: K, 2K, 4K, 8K, 8K ..."""
        return self.channels * min(2**level, self.max_mult)


class DownBlock(nn.Module):
    """Halve the side: a 1 x 1 shortcut and 2 x 2 average pool, plus gamma times a residual
    of a stride-2 4 x 4 conv and a 3 x 3 conv (LeakyReLU after each), gamma starting at
    ``gain``: DF-GAN's 0 makes a fresh discriminator a stack of poolings it learns to bend."""

    def __init__(self, in_channels: int, out_channels: int, gain: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.LeakyReLU(0.2),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.LeakyReLU(0.2),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), float(gain)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        skip = F.avg_pool2d(self.shortcut(h), 2)  # (B, C_out, H/2, W/2)
        return skip + self.gamma * self.residual(h)


class JointHead(nn.Module):
    """Features f (B, 8K, 4, 4) and sentence features s_hat (B, P) -> the logit D(x, s) (B,)."""

    def __init__(self, feature_channels: int, sentence_dim: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(feature_channels + sentence_dim, hidden, 3, padding=1, bias=False)
        self.out = nn.Conv2d(hidden, 1, 4, bias=False)

    def forward(self, f: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
        tiled = s_hat.to(f.dtype)[:, :, None, None].expand(-1, -1, *f.shape[-2:])  # (B, P, 4, 4)
        h = F.leaky_relu(self.conv(torch.cat([f, tiled], dim=1)), 0.2)  # (B, hidden, 4, 4)
        return self.out(h).flatten()  # (B,)


class JointDiscriminator(nn.Module):
    """D(x, s_hat) -> logits (B,); :meth:`features` and :meth:`judge` are its two halves."""

    def __init__(self, config: JointDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.conv_in = nn.Conv2d(3, config.width(0), 3, padding=1)
        self.blocks = nn.ModuleList(
            DownBlock(config.width(level), config.width(level + 1), config.residual_gain)
            for level in range(config.blocks)
        )
        self.head = JointHead(config.width(config.blocks), config.sentence_dim,
                              hidden=2 * config.channels)  # fmt: skip
        if config.spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(module)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, R, R) -> features (B, 8K, 4, 4), independent of the text."""
        side = self.config.resolution
        if x.ndim != 4 or x.shape[1:] != (3, side, side):
            raise ValueError(f"x must be (B, 3, {side}, {side}), got {tuple(x.shape)}")
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        return h

    def judge(self, f: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
        """Features (B, 8K, 4, 4) and sentence features (B, P) -> logits (B,)."""
        if s_hat.shape != (f.shape[0], self.config.sentence_dim):
            raise ValueError(f"s_hat must be ({f.shape[0]}, {self.config.sentence_dim}), got "
                             f"{tuple(s_hat.shape)}")  # fmt: skip
        return self.head(f, s_hat)

    def forward(self, x: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
        return self.judge(self.features(x), s_hat)
