"""Transformers over image tokens read with a caption: DALL-E's causal one, MaskGIT's
bidirectional one.

Notation: B batch, T text positions (``text_length``), n = g * g image tokens of a g x g grid
(``grid``) in row-major order, each one of K codes (``codebook_size``), C = ``width``, h heads,
D = ``context_dim``. The caption is read one of two ways (``text_conditioning``):

- ``"prefix"``: its BPE ids, laid out as ``<bos> tokens <eos> <pad>...``, are embedded with their
  own table and learned positions and placed before the image tokens in one sequence.
- ``"cross_attention"``: a frozen encoder's states (B, T, D) with their padding mask (Parti, Yu
  et al., 2022; Imagen's frozen text encoder, Saharia et al., 2022) are read by a
  cross-attention in every block; the sequence holds only image tokens, after a learned start
  token <bos> for DALL-E. One LayerNorm over the states first (Imagen): MiniLM's states reach
  |x| ~ 10 and the cross-attention's projections start at the scale of unit inputs.

Both networks run the same pre-LayerNorm GPT blocks (Radford et al., 2019) over the sequence:

- :class:`AutoregressiveTransformer` (DALL-E, Ramesh et al., 2021): causal attention over
  [text; c_0 .. c_{n-2}] (or [<bos>; c_0 .. c_{n-2}]); the output at the prefix's last position
  predicts c_0, at image position i the next token c_{i+1}. Prefix padding is not masked: like
  DALL-E's per-position padding tokens, a pad is an ordinary token the model learns to read.
  :meth:`~AutoregressiveTransformer.start` and :meth:`~AutoregressiveTransformer.extend` run the
  same network with a :class:`KVCache`, so sampling costs one position per token instead of the
  whole sequence; the cross-attention's keys and values of the text are computed once, by
  ``start``.
- :class:`MaskedTokenTransformer` (MaskGIT, Chang et al., 2022; Muse, Chang et al., 2023):
  bidirectional attention over [text; c] (or c alone) with some c_i replaced by the mask token
  K, predicting every image position. As a prefix, the text is read by every layer at the cost
  of T more positions; by cross-attention (Muse's choice), a frozen encoder's knowledge of
  language comes with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from atelier.text.encoder import TextEmbedding
from atelier.text.feed_forward import feed_forward

TextConditioning = Literal["prefix", "cross_attention"]
TEXT_CONDITIONINGS: tuple[TextConditioning, ...] = get_args(TextConditioning)

Text = torch.Tensor | TextEmbedding
"""What a token transformer reads of its captions: BPE ids (B, T) with ``"prefix"``, a frozen
encoder's :class:`~atelier.text.encoder.TextEmbedding` with ``"cross_attention"``."""


def text_rows(text: Text, rows: slice | list[int]) -> Text:
    """The captions ``rows`` of ``text`` (a list may repeat a row)."""
    if isinstance(text, TextEmbedding):
        return TextEmbedding(text.states[rows], text.mask[rows], text.pooled[rows])
    return text[rows]


def cat_text(parts: Sequence[Text]) -> Text:
    """Several batches of captions' ``Text`` as one."""
    if all(isinstance(part, TextEmbedding) for part in parts):
        return TextEmbedding(*(torch.cat([getattr(p, name) for p in parts])
                               for name in ("states", "mask", "pooled")))  # fmt: skip
    if any(isinstance(part, TextEmbedding) for part in parts):
        raise TypeError("cannot join BPE ids and encoder states into one batch")
    return torch.cat(list(parts))


@dataclass(frozen=True)
class TokenTransformerConfig:
    """Sizes of a token transformer; the vocabularies and grid come from the two tokenizers.

    ``text_conditioning`` says how the caption is read (see the module docstring); with
    ``"cross_attention"``, ``text_length`` is the encoder's window T, ``context_dim`` its width D
    and ``text_vocab`` is unused. Configs written before the choice existed load as ``"prefix"``.
    """

    text_vocab: int = 512
    text_length: int = 48
    codebook_size: int = 512
    grid: int = 16
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    text_conditioning: TextConditioning = "prefix"
    context_dim: int | None = None

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
        if self.text_conditioning not in TEXT_CONDITIONINGS:
            raise ValueError(f"unknown text_conditioning {self.text_conditioning!r}; valid: "
                             f"{', '.join(TEXT_CONDITIONINGS)}")  # fmt: skip
        if self.cross_attention:
            d = self.context_dim
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise ValueError("text_conditioning 'cross_attention' needs context_dim, the text "
                                 f"encoder's width, a positive integer; got {d!r}")  # fmt: skip
        elif self.context_dim is not None:
            raise ValueError("context_dim is the width of the states a cross-attention reads; "
                             "a 'prefix' model reads BPE ids, so leave it unset")  # fmt: skip

    @property
    def cross_attention(self) -> bool:
        """Whether the caption is read by cross-attention to a text encoder's states."""
        return self.text_conditioning == "cross_attention"

    @property
    def image_length(self) -> int:
        """n: image tokens per image."""
        return self.grid * self.grid


@dataclass
class Context:
    """What the cross-attentions read of a batch's text, projected once: ``keys[l]`` and
    ``values[l]`` (B, h, T, C/h) of layer l, and ``mask`` (B, 1, 1, T), True at text positions to
    attend to."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor


@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated for all of
    them: ``keys[l]`` and ``values[l]`` (B, h, capacity, C/h), filled up to ``length``; and the
    text's :class:`Context` for a cross-attention model, which stays fixed through the pass."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0
    context: Context | None = None


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


class CrossAttention(nn.Module):
    """Multi-head attention from the sequence to the text's states, honouring their mask."""

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.q = nn.Linear(config.width, config.width)
        self.kv = nn.Linear(config.context_dim, 2 * config.width)
        self.proj = nn.Linear(config.width, config.width)

    def keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States (B, T, D) -> keys and values (B, h, T, C/h), once per batch of captions."""
        B, T, _ = states.shape
        k, v = self.kv(states).view(B, T, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``x`` (B, t, C) attending to ``keys`` and ``values`` (B, h, T, C/h) where ``mask``
        (B, 1, 1, T) is True -> (B, t, C)."""
        B, t, C = x.shape
        q = self.q(x).view(B, t, self.heads, C // self.heads).transpose(1, 2)  # (B, h, t, C/h)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # (B, h, t, C/h)
        return self.proj(y.transpose(1, 2).reshape(B, t, C))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention, cross-attention to the text (a
    ``"cross_attention"`` model's) and MLP, each on a residual branch."""

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.width)
        self.attn = SelfAttention(config)
        if config.cross_attention:
            self.ln_cross = nn.LayerNorm(config.width)
            self.cross_attn = CrossAttention(config)
        self.ln_mlp = nn.LayerNorm(config.width)
        self.mlp = feed_forward(config.width, config.mlp_ratio)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        causal: bool,
        cache: KVCache | None = None,
        layer: int = 0,
        context: Context | None = None,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), causal=causal, cache=cache, layer=layer))
        if context is not None:
            keys, values = context.keys[layer], context.values[layer]
            x = x + self.drop(self.cross_attn(self.ln_cross(x), keys, values, context.mask))
        return x + self.drop(self.mlp(self.ln_mlp(x)))  # (B, t, C)


class TokenTransformer(nn.Module):
    """What both networks share: the text's embedding (ids and positions) or its states'
    LayerNorm, the image tokens' embedding, the blocks, and a head over the K codes."""

    causal: bool = False

    def __init__(self, config: TokenTransformerConfig, *, image_vocab: int) -> None:
        super().__init__()
        self.config = config
        C = config.width
        if config.cross_attention:
            self.ln_context = nn.LayerNorm(config.context_dim)
            if self.causal:
                # <bos>, its position included: the input whose output predicts c_0.
                self.bos = nn.Parameter(torch.randn(1, C) * 0.02)
        else:
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
            projections = [block.attn.proj, block.mlp[2]]
            if config.cross_attention:
                projections.append(block.cross_attn.proj)
            for proj in projections:
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.layers))

    @property
    def prefix_length(self) -> int:
        """Positions before the image tokens: T text ids, <bos> (a cross-attention DALL-E) or
        none (a cross-attention MaskGIT)."""
        return int(self.causal) if self.config.cross_attention else self.config.text_length

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

    def read_text(self, text: Text) -> tuple[torch.Tensor, Context | None]:
        """The captions as the sequence's prefix (B, prefix_length, C), and the cross-attentions'
        :class:`Context` (None for a ``"prefix"`` model)."""
        config = self.config
        if not config.cross_attention:
            if isinstance(text, TextEmbedding):
                raise TypeError("this token transformer reads the caption as BPE ids (its "
                                "text_conditioning is 'prefix'), not encoder states")  # fmt: skip
            return self.embed_text(text), None
        if not isinstance(text, TextEmbedding):
            raise TypeError("this token transformer reads a text encoder's states by "
                            "cross-attention: pass a TextEmbedding, not BPE ids")  # fmt: skip
        B, T, D = text.states.shape
        if (T, D) != (config.text_length, config.context_dim) or text.mask.shape != (B, T):
            raise ValueError(
                f"text states must be (B, {config.text_length}, {config.context_dim}) with a "
                f"(B, {config.text_length}) mask, got {tuple(text.states.shape)} and "
                f"{tuple(text.mask.shape)}"
            )
        states = self.ln_context(text.states)  # (B, T, D)
        kv = [block.cross_attn.keys_values(states) for block in self.blocks]
        context = Context([k for k, _ in kv], [v for _, v in kv], text.mask[:, None, None, :])
        prefix = self.bos.expand(B, -1, -1) if self.causal else states.new_zeros(B, 0, config.width)
        return prefix, context

    def embed_image(self, image: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Image tokens (B, t) at positions start .. start + t - 1 -> (B, t, C)."""
        t = image.shape[1]
        if start + t > self.config.image_length:
            raise ValueError(f"image positions {start}..{start + t - 1} are past the grid's "
                             f"{self.config.image_length}")  # fmt: skip
        return self.image_embed(image) + self.image_pos[start : start + t]

    def run(
        self, x: torch.Tensor, cache: KVCache | None = None, context: Context | None = None
    ) -> torch.Tensor:
        """The blocks over a sequence (B, t, C) -> logits (B, t, K); a cache's own context is
        read when ``context`` is not given."""
        if context is None and cache is not None:
            context = cache.context
        for layer, block in enumerate(self.blocks):
            x = block(x, causal=self.causal, cache=cache, layer=layer, context=context)
        if cache is not None:
            cache.length += x.shape[1]
        return self.head(self.ln_out(x))


class AutoregressiveTransformer(TokenTransformer):
    """DALL-E's decoder-only transformer: ``forward`` for training and uncached sampling,
    ``start`` and ``extend`` for sampling with a KV cache."""

    causal = True

    def __init__(self, config: TokenTransformerConfig) -> None:
        super().__init__(config, image_vocab=config.codebook_size)

    def forward(self, text: Text, image: torch.Tensor) -> torch.Tensor:
        """Text (B rows of :data:`Text`) and the first m < n image tokens (B, m) -> logits
        (B, m + 1, K) of image tokens 0 .. m (training passes m = n - 1, all but the last)."""
        prefix, context = self.read_text(text)  # (B, P, C)
        x = torch.cat([prefix, self.embed_image(image)], dim=1)  # (B, P + m, C)
        return self.run(x, context=context)[:, self.prefix_length - 1 :]

    def start(self, text: Text) -> tuple[torch.Tensor, KVCache]:
        """Text (B rows) -> the logits of image token 0 (B, K) and the cache holding the prefix
        (and the text's cross-attention keys and values, for every later token)."""
        x, context = self.read_text(text)  # (B, P, C)
        B, P, C = x.shape
        capacity = P + self.config.image_length - 1
        slots = (B, self.config.heads, capacity, C // self.config.heads)
        cache = KVCache([x.new_zeros(slots) for _ in self.blocks],
                        [x.new_zeros(slots) for _ in self.blocks], context=context)  # fmt: skip
        return self.run(x, cache)[:, -1], cache

    def extend(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Image token c_i (B,) after the cached ones -> the logits of c_{i+1} (B, K)."""
        i = cache.length - self.prefix_length
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

    def forward(self, text: Text, image: torch.Tensor) -> torch.Tensor:
        """Text (B rows of :data:`Text`) and image tokens (B, n), ``mask_id`` where unknown ->
        logits (B, n, K) at every image position."""
        if image.shape[1] != self.config.image_length:
            raise ValueError(f"image tokens must be (B, {self.config.image_length}), "
                             f"got {tuple(image.shape)}")  # fmt: skip
        prefix, context = self.read_text(text)  # (B, P, C)
        x = torch.cat([prefix, self.embed_image(image)], dim=1)  # (B, P + n, C)
        return self.run(x, context=context)[:, self.prefix_length :]
