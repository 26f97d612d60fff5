"""A small trainable transformer text encoder (pre-LayerNorm, learned positions).

Notation: B prompts, T token positions (at most ``max_length``), D = ``width``, H = ``heads``.
Input is token ids (B, T) and a mask (B, T) that is True at real tokens; padded positions are
never attended to (a key-padding mask in ``scaled_dot_product_attention``). Output is the
per-token states (B, T, D) after a final LayerNorm and a pooled vector (B, D), read from the
states by ``pooling`` (``text/pooling.py``): by default the mean over the real tokens (bos and
eos included). Attention is bidirectional, except with ``pooling="eos"``, CLIP's causal text
transformer, where each token attends to itself and the tokens before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from atelier.text.feed_forward import feed_forward
from atelier.text.pooling import TEXT_POOLINGS, TextPooling, build_pooling


@dataclass
class TransformerTextConfig:
    """Shape of :class:`TransformerText`; ``vocab_size`` comes from the tokenizer.

    ``pooling`` names how the states become the pooled vector (``text/pooling.py``); ``"eos"``
    also makes attention causal (:attr:`causal`).
    """

    vocab_size: int
    max_length: int = 77
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    pooling: TextPooling = "mean"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_length", "width", "layers", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in TEXT_POOLINGS:
            raise ValueError(
                f"unknown text pooling {self.pooling!r}; valid: {', '.join(TEXT_POOLINGS)}"
            )

    @property
    def causal(self) -> bool:
        """Whether attention is causal: with the end token read (CLIP), it must be the one
        position that has seen the whole caption; the other poolings read every token, so every
        token sees every other."""
        return self.pooling == "eos"


class BlockShape(Protocol):
    """What a transformer block needs of a config (the text and the image transformers share it)."""

    width: int
    heads: int
    mlp_ratio: int
    dropout: float


class SelfAttention(nn.Module):
    """Multi-head self-attention that ignores padded keys, and with ``causal`` later ones."""

    def __init__(self, config: BlockShape) -> None:
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
        """``x`` (B, T, D), ``mask`` (B, T) True at real tokens -> (B, T, D)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, T), broadcast over heads and queries
        if causal:
            # One mask for both (SDPA takes is_causal or attn_mask, not the two); position 0 is
            # real in every row, so no query is left with nothing to attend to.
            earlier = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
            key_mask = key_mask & earlier  # (B, 1, T, T)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, D / H)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then MLP, each on a residual branch."""

    def __init__(self, config: BlockShape) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.width)
        self.attn = SelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.width)
        self.mlp = feed_forward(config.width, config.mlp_ratio)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
        """``x`` (B, T, D), ``mask`` (B, T) -> (B, T, D)."""
        x = x + self.drop(self.attn(self.ln_attn(x), mask, causal=causal))
        return x + self.drop(self.mlp(self.ln_mlp(x)))


class TransformerText(nn.Module):
    """Token ids and mask -> per-token states (B, T, D) and the pooled vector (B, D)."""

    def __init__(self, config: TransformerTextConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_length, config.width))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_final = nn.LayerNorm(config.width)
        self.pool = build_pooling(config.pooling, width=config.width, heads=config.heads,
                                  mlp_ratio=config.mlp_ratio)  # fmt: skip
        self.apply(init_weights)
        nn.init.normal_(self.position_embedding, std=0.01)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, *, token_embeds: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ids`` (B, T) int64, ``mask`` (B, T) bool -> ``(states (B, T, D), pooled (B, D))``.
        ``token_embeds`` (B, T, D) stands in for the table's embeddings of ``ids`` (textual
        inversion's new words, ``text/embeddings.py``).

        Every row needs at least one True in ``mask``; an all-padding row has nothing to attend
        to and would come out NaN.
        """
        T = ids.shape[1]
        if T > self.config.max_length:
            raise ValueError(f"got {T} tokens, more than max_length={self.config.max_length}")
        if token_embeds is None:
            token_embeds = self.token_embedding(ids)
        x = token_embeds + self.position_embedding[:T]  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask, causal=self.config.causal)
        states = self.ln_final(x)  # (B, T, D)
        return states, self.pool(states, mask)


def init_weights(module: nn.Module) -> None:
    # Small normal weights and zero biases (GPT-2's scheme) keep early activations near unit scale.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
