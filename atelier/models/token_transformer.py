"""Transformers over [text tokens; image tokens]: DALL-E's causal one, MaskGIT's bidirectional one.

Notation: B batch, T text positions (``text_length``: the caption's BPE ids laid out as
``<bos> tokens <eos> <pad>...``), n = g * g image tokens of a g x g grid (``grid``) in row-major
order, each one of K codes (``codebook_size``), C = ``width``, h heads. Both networks embed the
two kinds of token with their own tables and learned positions, concatenate them into one
sequence and run the same pre-LayerNorm GPT blocks (Radford et al., 2019) over it:

- :class:`AutoregressiveTransformer` (DALL-E, Ramesh et al., 2021): causal attention over
  [text; c_0 .. c_{n-2}]; the output at text position T-1 predicts c_0, at image position i the
  next token c_{i+1}. Padding is not masked: like DALL-E's per-position padding tokens, a pad
  is an ordinary token the model learns to read. :meth:`~AutoregressiveTransformer.start` and
  :meth:`~AutoregressiveTransformer.extend` run the same network with a :class:`KVCache`, so
  sampling costs one position per token instead of the whole sequence.
- :class:`MaskedTokenTransformer` (MaskGIT, Chang et al., 2022; Muse, Chang et al., 2023):
  bidirectional attention over [text; c] with some c_i replaced by the mask token K, predicting
  every image position. The caption is a prefix in the same sequence rather than states read by
  cross-attention (Muse): one block type for both networks, and the text is read by every layer
  at the cost of T more positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TokenTransformerConfig:
    """Sizes of a token transformer; the vocabularies and grid come from the two tokenizers."""

    text_vocab: int = 512
    text_length: int = 48
    codebook_size: int = 512
    grid: int = 16
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("text_vocab", "text_length", "codebook_size", "grid", "width", "layers",
                     "heads", "mlp_ratio"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.text_length < 2:
            raise ValueError(f"text_length must be at least 2 (bos, eos), got {self.text_length}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def image_length(self) -> int:
        """n: image tokens per image."""
        return self.grid * self.grid


@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated for all of
    them: ``keys[l]`` and ``values[l]`` (B, h, capacity, C/h), filled up to ``length``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0


class SelfAttention(nn.Module):
    """Multi-head self-attention, causal or not, optionally appending to a :class:`KVCache`."""

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__()
        self.heads, self.dropout = config.heads, config.dropout
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)

    def forward(
        self, x: torch.Tensor, *, causal: bool, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        """``x`` (B, t, C) -> (B, t, C). With ``cache``, the t new positions follow the cached
        ones: their keys and values are written into layer ``layer``'s slots and the queries
        attend to every position so far (t = 1 after the first call, which needs no mask)."""
        B, t, C = x.shape
        q, k, v = self.qkv(x).view(B, t, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            start = cache.length
            if start and t != 1:
                raise ValueError("a cached pass after the first takes one position at a time")
            cache.keys[layer][:, :, start : start + t] = k  # (B, h, t, C/h)
            cache.values[layer][:, :, start : start + t] = v
            k = cache.keys[layer][:, :, : start + t]
            v = cache.values[layer][:, :, : start + t]
            causal = causal and start == 0
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, t, C/h)
        return self.proj(y.transpose(1, 2).reshape(B, t, C))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then MLP, each on a residual branch."""

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.width)
        self.attn = SelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.width)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, config.mlp_ratio * config.width),
            nn.GELU(),
            nn.Linear(config.mlp_ratio * config.width, config.width),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, *, causal: bool, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), causal=causal, cache=cache, layer=layer))
        return x + self.drop(self.mlp(self.ln_mlp(x)))  # (B, t, C)


class TokenTransformer(nn.Module):
    """What both networks share: the two embeddings, the blocks, and a head over the K codes."""

    causal: bool = False

    def __init__(self, config: TokenTransformerConfig, *, image_vocab: int) -> None:
        super().__init__()
        self.config = config
        C = config.width
        self.text_embed = nn.Embedding(config.text_vocab, C)
        self.text_pos = nn.Parameter(torch.zeros(config.text_length, C))
        self.image_embed = nn.Embedding(image_vocab, C)
        self.image_pos = nn.Parameter(torch.zeros(config.image_length, C))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.codebook_size)
        self.apply(self._init)
        # GPT-2's scaled init: each residual branch's output projection by 1/sqrt(2 L).
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text ids (B, T) -> (B, T, C)."""
        if text.ndim != 2 or text.shape[1] != self.config.text_length:
            raise ValueError(f"text ids must be (B, {self.config.text_length}), "
                             f"got {tuple(text.shape)}")  # fmt: skip
        return self.text_embed(text) + self.text_pos

    def embed_image(self, image: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Image tokens (B, t) at positions start .. start + t - 1 -> (B, t, C)."""
        t = image.shape[1]
        if start + t > self.config.image_length:
            raise ValueError(f"image positions {start}..{start + t - 1} are past the grid's "
                             f"{self.config.image_length}")  # fmt: skip
        return self.image_embed(image) + self.image_pos[start : start + t]

    def run(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The blocks over a sequence (B, t, C) -> logits (B, t, K)."""
        for layer, block in enumerate(self.blocks):
            x = block(x, causal=self.causal, cache=cache, layer=layer)
        if cache is not None:
            cache.length += x.shape[1]
        return self.head(self.ln_out(x))


class AutoregressiveTransformer(TokenTransformer):
    """DALL-E's decoder-only transformer: ``forward`` for training and uncached sampling,
    ``start`` and ``extend`` for sampling with a KV cache."""

    causal = True

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__(config, image_vocab=config.codebook_size)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Text ids (B, T) and the first m < n image tokens (B, m) -> logits (B, m + 1, K) of
        image tokens 0 .. m (training passes m = n - 1, all but the last)."""
        x = torch.cat([self.embed_text(text), self.embed_image(image)], dim=1)  # (B, T + m, C)
        return self.run(x)[:, self.config.text_length - 1 :]

    def start(self, text: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """Text ids (B, T) -> the logits of image token 0 (B, K) and the cache holding them."""
        x = self.embed_text(text)
        B, T, C = x.shape
        capacity = T + self.config.image_length - 1
        slots = (B, self.config.heads, capacity, C // self.config.heads)
        cache = KVCache([x.new_zeros(slots) for _ in self.blocks],
                        [x.new_zeros(slots) for _ in self.blocks])  # fmt: skip
        return self.run(x, cache)[:, -1], cache

    def extend(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Image token c_i (B,) after the cached ones -> the logits of c_{i+1} (B, K)."""
        i = cache.length - self.config.text_length
        if i >= self.config.image_length - 1:
            raise ValueError(f"image token {i} is the grid's last: no token follows it")
        return self.run(self.embed_image(token[:, None], start=i), cache)[:, -1]


class MaskedTokenTransformer(TokenTransformer):
    """MaskGIT's bidirectional transformer; ``mask_id`` = K is the masked position's token."""

    causal = False

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__(config, image_vocab=config.codebook_size + 1)

    @property
    def mask_id(self) -> int:
        return self.config.codebook_size

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Text ids (B, T) and image tokens (B, n), ``mask_id`` where unknown -> logits
        (B, n, K) at every image position."""
        if image.shape[1] != self.config.image_length:
            raise ValueError(f"image tokens must be (B, {self.config.image_length}), "
                             f"got {tuple(image.shape)}")  # fmt: skip
        x = torch.cat([self.embed_text(text), self.embed_image(image)], dim=1)  # (B, T + n, C)
        return self.run(x)[:, self.config.text_length :]
