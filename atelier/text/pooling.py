"""How the trainable text transformer's token states become one vector (its ``pooled``).

Notation: B prompts, T positions, D = ``width``, H = ``heads``; ``states`` (B, T, D) after the
final LayerNorm, ``mask`` (B, T) True at real tokens (``<bos> tokens <eos>``, then padding).

- ``"mean"``: the mean of the real tokens' states. It needs no special position, but it sums
  what each word's state holds; a tower that has not learnt to write "red belongs to the circle"
  into the words' states pools "a red circle and a blue square" and "a blue circle and a red
  square" to the same vector (every CLIP trained here did, at cosine 0.9995 or more).
- ``"eos"``: CLIP's reading (Radford et al. 2021): the state at the last real token, ``<eos>``,
  of a transformer with a causal attention mask. Under that mask the end token is the only one
  that has read the whole caption, so the tower is trained to compose the caption there.
- ``"attention"``: multi-head attention pooling with a learned query (MAP), the pooling by
  multihead attention of Set Transformer (Lee et al. 2019) that CoCa's attentional pooler
  (Yu et al. 2022) and SigLIP's head (Zhai et al. 2023) use: a query of its own chooses which
  tokens to read, where the mean weighs them all alike.

Each is an ``nn.Module`` ``(states, mask) -> (B, D)`` that never reads a padded position.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from atelier.text.feed_forward import feed_forward

TextPooling = Literal["mean", "eos", "attention"]
TEXT_POOLINGS: tuple[TextPooling, ...] = get_args(TextPooling)


class MeanPool(nn.Module):
    """The mean of the real tokens' states."""

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
        return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)


class EndTokenPool(nn.Module):
    """The state at the last real token (``<eos>``; a truncated prompt keeps its eos)."""

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T = mask.shape
        positions = torch.arange(T, device=mask.device)
        # The last True of each row, found from the mask rather than from the eos id, so that a
        # row is read where its real tokens end whatever tokenizer laid it out.
        last = (mask.long() * positions).argmax(1)  # (B,)
        return states[torch.arange(B, device=states.device), last]  # (B, D)


class AttentionPool(nn.Module):
    """Multi-head attention from one learned query to the real tokens, then a residual MLP
    (SigLIP's MAP head): ``x = Attn(q, states); pooled = x + MLP(LN(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        self.ln = nn.LayerNorm(width)
        self.mlp = feed_forward(width, mlp_ratio)
        nn.init.normal_(self.query, std=0.02)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = states.shape
        H = self.heads
        q = self.q(self.query).view(1, 1, H, D // H).transpose(1, 2).expand(B, -1, -1, -1)
        k, v = self.kv(states).view(B, T, 2, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, T, D/H)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = self.proj(y.transpose(1, 2).reshape(B, D))  # (B, D)
        return x + self.mlp(self.ln(x))


def build_pooling(pooling: TextPooling, *, width: int, heads: int, mlp_ratio: int) -> nn.Module:
    """The pooling module ``pooling`` names, for states ``width`` wide."""
    if pooling == "mean":
        return MeanPool()
    if pooling == "eos":
        return EndTokenPool()
    if pooling == "attention":
        return AttentionPool(width, heads, mlp_ratio)
    raise ValueError(f"unknown text pooling {pooling!r}; valid: {', '.join(TEXT_POOLINGS)}")
