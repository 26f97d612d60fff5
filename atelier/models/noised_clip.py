"""A noised CLIP (GLIDE; Nichol et al. 2022): an image tower that reads x_t and t.

CLIP guidance through x_0 (``diffusion/clip_guidance.py``) differentiates through the denoiser
and, for a latent model, the decoder at every step. GLIDE instead trains CLIP's image tower on
noised images with the timestep as an input, so its gradient at x_t guides directly.

Notation: x_t (B, C, h, w) a diffusion model's VP latent at timestep t (B,), E the joint width.
The tower is a Vision Transformer over P x P patches of x_t with a class token, as
:class:`~atelier.models.clip.VisionTransformer`, plus the timestep: its sinusoid lifted by an MLP
and added to every token before the blocks. The text side is a trained CLIP's, frozen: the tower
learns to put a noised latent where that CLIP puts its caption, so the noised CLIP guides toward
the same text embeddings the CLIP of the x_0 route does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from atelier.models.clip import CLIP, VisionTransformer, ViTConfig
from atelier.models.unet import EmbeddingMLP, timestep_embedding
from atelier.text.transformer import init_weights


@dataclass(frozen=True)
class NoisedViTConfig(ViTConfig):
    """Shape of the noised image tower: CLIP's image tower (:class:`ViTConfig`) over latents,
    ``in_channels`` and ``image_size`` the latent's."""

    image_size: int = 16
    patch_size: int = 2
    in_channels: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.in_channels < 1:
            raise ValueError(f"NoisedViTConfig.in_channels must be positive, "
                             f"got {self.in_channels}")  # fmt: skip


class NoisedVisionTransformer(VisionTransformer):
    """x_t (B, C, h, w) and t (B,) -> the class token's final state (B, D): CLIP's image tower
    over latents, the timestep's embedding added to every token."""

    def __init__(self, config: NoisedViTConfig) -> None:
        super().__init__(config, in_channels=config.in_channels)
        self.time_embedding = EmbeddingMLP(config.width, config.width)
        self.time_embedding.apply(init_weights)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c, s = self.config.in_channels, self.config.image_size
        if x_t.ndim != 4 or x_t.shape[1:] != (c, s, s):
            raise ValueError(f"the noised image tower takes (B, {c}, {s}, {s}) latents, "
                             f"got {tuple(x_t.shape)}")  # fmt: skip
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        temb = self.time_embedding(timestep_embedding(t, self.config.width).to(x_t.dtype))
        return self.encode(x_t, added=temb)  # (B, D)


class NoisedCLIP(nn.Module):
    """A noised image tower projected into a frozen CLIP's joint space of width E."""

    max_logit_scale = math.log(100.0)

    def __init__(self, config: NoisedViTConfig, clip: CLIP) -> None:
        super().__init__()
        self.config = config
        self.visual = NoisedVisionTransformer(config)
        self.image_projection = nn.Linear(config.width, clip.config.embed_dim, bias=False)
        nn.init.normal_(self.image_projection.weight, std=config.width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.clip = clip.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> NoisedCLIP:
        super().train(mode)
        self.clip.eval()  # the text side stays frozen, dropout off
        return self

    def encode_image(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) at timesteps (B,) -> unit vectors (B, E)."""
        return F.normalize(self.image_projection(self.visual(x_t, t)), dim=-1)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> the frozen CLIP's unit text vectors (B, E)."""
        return self.clip.encode_text(prompts)

    def temperature_scale(self) -> torch.Tensor:
        """exp(s), with s capped at log(100)."""
        return self.logit_scale.clamp(max=self.max_logit_scale).exp()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Logits (B_images, B_texts) against unit text vectors ``text`` (B_texts, E)."""
        return self.temperature_scale() * self.encode_image(x_t, t) @ text.T
