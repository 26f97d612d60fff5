"""unCLIP's diffusion prior network (Ramesh et al. 2022, section 2.2): a transformer that predicts
a clean CLIP image embedding from a noised one and the caption.

Notation: B batch, E = ``embed_dim`` (the CLIP embedding width), T = ``text_length`` caption
positions of width W = ``text_dim`` (the states of CLIP's text tower), C = ``width``, t (B,)
timesteps, x_t (B, E) the noised image embedding in the prior's normalised space. The sequence
is, in DALL-E 2's order,

    [T caption states, the CLIP text embedding z_t, the timestep, x_t, a learned query]

each projected to width C, plus learned positions: T + 4 tokens. Pre-LayerNorm blocks (those of
CLIP's own towers, ``text/transformer.py``) run over it with the caption's padding masked out,
and the query's final state, projected to E, is the estimate of the clean embedding x_0 (DALL-E
2 predicts x_0 rather than the noise: prediction type ``"sample"``).

DALL-E 2 masks attention causally; here every position sees every other. The query reads the
whole sequence either way, and the caption's positions may also read the noised embedding; a
causal mask would only let the caption's positions be computed once per sample instead of once
per step, a saving a 25-step prior of this size does not need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from atelier.models.unet import EmbeddingMLP, timestep_embedding
from atelier.text.encoder import TextEmbedding
from atelier.text.transformer import Block, init_weights


@dataclass(frozen=True)
class PriorConfig:
    """Sizes of a :class:`PriorTransformer`; ``embed_dim``, ``text_dim`` and ``text_length`` are
    the CLIP's (its joint width, its text tower's width and window)."""

    embed_dim: int = 128
    text_dim: int = 128
    text_length: int = 48
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("embed_dim", "text_dim", "text_length", "width", "layers", "heads",
                     "mlp_ratio"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PriorConfig.{name} must be a positive integer, got {value!r}")
        if self.width % self.heads or self.width % 2:
            raise ValueError(f"width {self.width} must be even and divisible by heads "
                             f"{self.heads}")  # fmt: skip
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class PriorTransformer(nn.Module):
    """``forward(x_t, t, caption) -> x_0 estimate (B, E)``; ``caption`` is a
    :class:`~atelier.text.encoder.TextEmbedding` of CLIP's text tower states (B, T, W), their
    mask (B, T) and, as ``pooled``, the CLIP text embeddings z_t (B, E)."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        C, E = config.width, config.embed_dim
        self.text_states = nn.Linear(config.text_dim, C)
        self.text_embed = nn.Linear(E, C)
        self.time_embed = EmbeddingMLP(C, C)
        self.noised_embed = nn.Linear(E, C)
        self.query = nn.Parameter(torch.zeros(1, 1, C))
        self.position_embedding = nn.Parameter(torch.zeros(config.text_length + 4, C))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_final = nn.LayerNorm(C)
        self.out = nn.Linear(C, E)
        self.apply(init_weights)
        nn.init.normal_(self.query, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.01)

    def forward(self, x: torch.Tensor, t: torch.Tensor, caption: TextEmbedding) -> torch.Tensor:
        """``x`` (B, E) noised embeddings, ``t`` (B,) timesteps, ``caption`` -> x_0 (B, E)."""
        self._check_inputs(x, t, caption)
        c = self.config
        # Unit CLIP embeddings have components near 1 / sqrt(E); scaled by sqrt(E) they enter at
        # the unit scale of the other inputs (the normalised x_t, the LayerNormed states).
        z_t = caption.pooled.to(x.dtype) * c.embed_dim**0.5
        tokens = torch.cat(
            [
                self.text_states(caption.states.to(x.dtype)),  # (B, T, C)
                self.text_embed(z_t)[:, None],  # (B, 1, C)
                self.time_embed(timestep_embedding(t, c.width).to(x.dtype))[:, None],
                self.noised_embed(x)[:, None],
                self.query.to(x.dtype).expand(len(x), -1, -1),
            ],
            dim=1,
        )  # (B, T + 4, C)
        h = tokens + self.position_embedding.to(x.dtype)
        fixed = torch.ones(len(x), 4, dtype=torch.bool, device=x.device)
        mask = torch.cat([caption.mask, fixed], dim=1)  # (B, T + 4)
        for block in self.blocks:
            h = block(h, mask)
        return self.out(self.ln_final(h[:, -1]))  # (B, E)

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, caption: TextEmbedding) -> None:
        c = self.config
        if x.ndim != 2 or x.shape[1] != c.embed_dim:
            raise ValueError(f"x must be (B, {c.embed_dim}), got {tuple(x.shape)}")
        b = x.shape[0]
        if t.shape != (b,):
            raise ValueError(f"t must be ({b},), got {tuple(t.shape)}")
        if caption.states.shape != (b, c.text_length, c.text_dim):
            raise ValueError(f"caption states must be ({b}, {c.text_length}, {c.text_dim}), "
                             f"got {tuple(caption.states.shape)}")  # fmt: skip
        if caption.mask.shape != (b, c.text_length) or caption.mask.dtype != torch.bool:
            raise ValueError(f"caption mask must be bool ({b}, {c.text_length})")
        if caption.pooled.shape != (b, c.embed_dim):
            raise ValueError(f"the caption's text embeddings (pooled) must be ({b}, "
                             f"{c.embed_dim}), got {tuple(caption.pooled.shape)}")  # fmt: skip
