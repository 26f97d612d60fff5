"""DF-GAN's generator (Tao et al., 2022): noise and text to an image in one pass, the sentence
fused into every block, with AttnGAN's word attention (Xu et al., 2018) as an option.

Notation: z (B, Z) noise, s (B, P) the sentence vector, w (B, T, D) the word states with mask
(B, T), c = [z; s_hat] (B, Z + P) the condition, with s_hat = s / ||s|| * sqrt(P) (see
:func:`sentence_features`), h (B, C, H, W) features, K = ``channels``, R = ``resolution``.

A linear layer maps z to a 4 x 4 map of 8K channels; each of the log2(R / 4)
:class:`GeneratorBlock`\\ s doubles the side and fuses c twice (widths 8K, 8K, 4K, 2K, K from
4 px to 64 px); LeakyReLU, a 3 x 3 conv and tanh make the RGB image in [-1, 1]
(``output = "linear"`` drops the tanh, as StyleGAN does, and whoever makes pixels clamps:
shapes-world images are mostly white, +1, where tanh's gradient vanishes, and DF-GAN's
generator collapsed to all-white images there):

    h <- up(h);  h <- shortcut(h) + conv(DF(conv(DF(h, c)), c))

A deep fusion block DF (:class:`DeepFusion`) is two :class:`Affine` modulations, each followed
by LeakyReLU: h * gamma(c) + beta(c) per channel, gamma and beta two-layer MLPs of c initialised
to the identity (gamma = 1, beta = 0). Stacking them lets the text decide features deep in the
block rather than only the input (DF-GAN section 3.2). DF-GAN feeds [z; s] to the fusion too,
so the noise modulates every block as well as the 4 x 4 map.

With ``positional``, every block adds a learned map P (C_out, 2H, 2W) to its upsampled input
(a learned positional embedding per side, starting at 0). Without it, the 4 x 4 map upsampled
by nearest neighbour is constant over 16 x 16 px patches and 3 x 3 convs see structure only at
patch edges and the zero-padded border: the generator draws along those lines first (measured
on shapes-gan: coloured bars on the image border and at 16 px steps for 2,500 steps), while
shapes-world objects sit on a 3 x 3 grid of cells whose centres (S/6, S/2, 5S/6) no 4 x 4
patch shares.

With ``attention_resolutions``, a :class:`WordAttention` follows the blocks that output those
sides: every pixel attends over the words and adds what it reads (AttnGAN's attention model,
section 3.1, as a residual whose gain starts at 0, so it changes nothing until trained).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from atelier.text.encoder import TextEmbedding


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of a :class:`FusionGenerator`; ``sentence_dim`` and ``word_dim`` are the text
    encoder's pooled and per-token widths (384 for MiniLM)."""

    resolution: int = 64
    z_dim: int = 100
    sentence_dim: int = 384
    channels: int = 32
    max_mult: int = 8
    word_dim: int = 384
    attention_resolutions: tuple[int, ...] = ()
    positional: bool = False
    output: Literal["tanh", "linear"] = "tanh"

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))
        side = self.resolution
        if side < 8 or side & (side - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {side}")
        if self.output not in ("tanh", "linear"):
            raise ValueError(f"output must be 'tanh' or 'linear', got {self.output!r}")
        for name in ("z_dim", "sentence_dim", "channels", "max_mult", "word_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        sides = [4 * 2**k for k in range(1, self.blocks + 1)]
        wrong = [r for r in self.attention_resolutions if r not in sides]
        if wrong:
            raise ValueError(f"attention_resolutions {wrong} are not block outputs; "
                             f"valid: {sides}")  # fmt: skip

    @property
    def blocks(self) -> int:
        return int(math.log2(self.resolution // 4))

    def width(self, level: int) -> int:
        """Channels at side 4 * 2**level: 8K at 4 px, halving per level, K at R."""
        return self.channels * min(2 ** (self.blocks - level), self.max_mult)


def sentence_features(s: torch.Tensor) -> torch.Tensor:
    """s rescaled to norm sqrt(P) (B, P): elements near unit size beside z's, whatever the
    encoder's scale (MiniLM's pooled vector has norm 1, the trainable encoder's is free). The
    empty prompt's zero vector stays zero."""
    return F.normalize(s, dim=-1) * math.sqrt(s.shape[-1])


class Affine(nn.Module):
    """h * gamma(c) + beta(c), per channel; gamma and beta start at 1 and 0 for every c."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(
            nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels)
        )
        self.beta = nn.Sequential(
            nn.Linear(cond_dim, channels), nn.ReLU(), nn.Linear(channels, channels)
        )
        nn.init.zeros_(self.gamma[2].weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].weight)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma(c)[:, :, None, None]  # (B, C, 1, 1)
        beta = self.beta(c)[:, :, None, None]
        return h * gamma + beta


class DeepFusion(nn.Module):
    """DF-GAN's fusion block: two affine modulations by c, each followed by LeakyReLU(0.2)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.affine0 = Affine(cond_dim, channels)
        self.affine1 = Affine(cond_dim, channels)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.affine0(h, c), 0.2)
        return F.leaky_relu(self.affine1(h, c), 0.2)


class GeneratorBlock(nn.Module):
    """Upsample 2x (nearest), add the positional map if any, then a residual of fusion and
    3 x 3 convs beside a shortcut."""

    def __init__(self, cond_dim: int, in_channels: int, out_channels: int,
                 side: int | None = None) -> None:  # fmt: skip
        super().__init__()
        # side: the output side when the block adds a learned positional map to its input.
        self.position = (nn.Parameter(torch.zeros(in_channels, side, side))
                         if side is not None else None)  # fmt: skip
        self.fuse0 = DeepFusion(cond_dim, in_channels)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.fuse1 = DeepFusion(cond_dim, out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # A 1 x 1 conv only where the width changes, as in DF-GAN.
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, C_in, 2H, 2W)
        if self.position is not None:
            h = h + self.position.to(h.dtype)
        residual = self.conv1(self.fuse1(self.conv0(self.fuse0(h, c)), c))
        skip = h if self.shortcut is None else self.shortcut(h)
        return skip + residual  # (B, C_out, 2H, 2W)


class WordAttention(nn.Module):
    """Each pixel attends over the words: h + g * sum_t softmax_t(h . e_t / sqrt(C)) e_t,
    with e = U w the words projected to the feature width (AttnGAN's perception layer) and the
    gain g a learned scalar starting at 0."""

    def __init__(self, channels: int, word_dim: int) -> None:
        super().__init__()
        self.to_words = nn.Linear(word_dim, channels, bias=False)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, height, width = h.shape
        query = h.flatten(2).transpose(1, 2)  # (B, N, C)
        e = self.to_words(words)  # (B, T, C)
        # Scaled as in Vaswani et al.: AttnGAN's unscaled scores saturate the softmax at width.
        scores = query @ e.transpose(1, 2) / math.sqrt(c)  # (B, N, T)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        context = scores.softmax(-1) @ e  # (B, N, C)
        return h + self.gain * context.transpose(1, 2).reshape(b, c, height, width)


class FusionGenerator(nn.Module):
    """G(z, text) -> images (B, 3, R, R) in [-1, 1]; ``text`` a :class:`TextEmbedding` (its
    pooled vector always, its word states with attention)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        cond_dim = config.z_dim + config.sentence_dim
        self.fc = nn.Linear(config.z_dim, config.width(0) * 16)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        for level in range(1, config.blocks + 1):
            width = config.width(level)
            side = 4 * 2**level if config.positional else None
            self.blocks.append(GeneratorBlock(cond_dim, config.width(level - 1), width, side))
            if 4 * 2**level in config.attention_resolutions:
                self.attention[str(4 * 2**level)] = WordAttention(width, config.word_dim)
        self.to_rgb = nn.Conv2d(config.width(config.blocks), 3, 3, padding=1)

    def forward(self, z: torch.Tensor, text: TextEmbedding) -> torch.Tensor:
        config = self.config
        if z.ndim != 2 or z.shape[1] != config.z_dim:
            raise ValueError(f"z must be (B, {config.z_dim}), got {tuple(z.shape)}")
        s = text.pooled
        if s.shape != (z.shape[0], config.sentence_dim):
            raise ValueError(
                f"the sentence vector must be ({z.shape[0]}, {config.sentence_dim}), got "
                f"{tuple(s.shape)}: a generator needs the text encoder it was built for"
            )
        c = torch.cat([z, sentence_features(s.to(z.dtype))], dim=1)  # (B, Z + P)
        h = self.fc(z).view(z.shape[0], config.width(0), 4, 4)  # (B, 8K, 4, 4)
        for block in self.blocks:
            h = block(h, c)
            key = str(h.shape[-1])
            if key in self.attention:
                h = self.attention[key](h, text.states.to(h.dtype), text.mask)
        x = self.to_rgb(F.leaky_relu(h, 0.2))  # (B, 3, R, R)
        return torch.tanh(x) if config.output == "tanh" else x
