"""CLIP (Radford et al. 2021): an image tower and a text tower trained to agree in one space.

Notation: B images and B captions, E = ``embed_dim``. The image tower is a Vision Transformer
(Dosovitskiy et al. 2021): the image, in [-1, 1], is cut into P x P patches, each linearly
embedded, a learned class token and positions are added, pre-LayerNorm blocks (shared with the
text transformer) mix them, and the class token's final state is the image feature. The text
tower is any atelier :class:`TextEncoder` (its pooled vector; the trainable transformer, read by
its ``pooling``: the mean, CLIP's end token under a causal mask, or an attention pool; or the
frozen MiniLM). Linear projections map both to E, where they are L2-normalised; the logits of
every image-caption pair are cos(i, t) * exp(s) with a learned log-temperature s, initialised to
log(1 / 0.07) and capped at log(100) as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from atelier.text.encoder import TextEncoder
from atelier.text.transformer import Block, init_weights


@dataclass(frozen=True)
class ViTConfig:
    """Shape of the image tower."""

    image_size: int = 64
    patch_size: int = 8
    width: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "width", "layers", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{type(self).__name__}.{name} must be positive, got {getattr(self, name)}"
                )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")

    @property
    def tokens(self) -> int:
        """Patches plus the class token."""
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass(frozen=True)
class CLIPConfig:
    """The image tower, the joint embedding width and the initial temperature."""

    vision: ViTConfig = ViTConfig()
    embed_dim: int = 128
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")
        if not 0 < self.init_temperature < 1:
            raise ValueError(f"init_temperature must be in (0, 1), got {self.init_temperature}")


class VisionTransformer(nn.Module):
    """Images (B, 3, S, S) in [-1, 1] -> the class token's final state (B, D).

    ``in_channels`` other than 3 and :meth:`encode`'s ``added`` (a vector added to every token
    before the first block) serve the noised image tower (``models/noised_clip.py``)."""

    def __init__(self, config: ViTConfig, *, in_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        p, d = config.patch_size, config.width
        self.patch_embedding = nn.Conv2d(in_channels, d, kernel_size=p, stride=p)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embedding = nn.Parameter(torch.zeros(config.tokens, d))
        self.ln_pre = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_post = nn.LayerNorm(d)
        self.apply(init_weights)
        nn.init.normal_(self.class_token, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.01)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if images.ndim != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(
                f"the image tower takes (B, 3, {size}, {size}) images in [-1, 1], "
                f"got {tuple(images.shape)}; resize to {size} px first"
            )
        return self.encode(images)

    def encode(self, x: torch.Tensor, added: torch.Tensor | None = None) -> torch.Tensor:
        """Checked input (B, C, S, S), plus ``added`` (B, D) on every token if given -> (B, D)."""
        x = self.patch_embedding(x).flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, N + 1, D)
        x = x + self.position_embedding
        if added is not None:
            x = x + added[:, None]
        x = self.ln_pre(x)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)  # (B, N + 1)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_post(x[:, 0])  # (B, D)


class CLIP(nn.Module):
    """Image and text towers with projections into one normalised space of width E."""

    max_logit_scale = math.log(100.0)

    def __init__(self, config: CLIPConfig, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(config.vision)
        self.text = text_encoder
        self.image_projection = nn.Linear(config.vision.width, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(text_encoder.pooled_dim, config.embed_dim, bias=False)
        nn.init.normal_(self.image_projection.weight, std=config.vision.width**-0.5)
        nn.init.normal_(self.text_projection.weight, std=text_encoder.pooled_dim**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.init_temperature)))

    @property
    def image_size(self) -> int:
        return self.config.vision.image_size

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised image-tower features (B, D): what FID/KID and k-NN realism use."""
        return self.visual(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> unit vectors (B, E)."""
        return F.normalize(self.image_projection(self.visual(images)), dim=-1)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> unit vectors (B, E)."""
        pooled = self.text.encode(list(prompts)).pooled  # (B, P)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def temperature_scale(self) -> torch.Tensor:
        """exp(s), with s capped at log(100)."""
        return self.logit_scale.clamp(max=self.max_logit_scale).exp()

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Logits (B_images, B_prompts): scaled cosine similarity of every pair."""
        return self.temperature_scale() * self.encode_image(images) @ self.encode_text(prompts).T
