"""Choose and build a text encoder from a typed config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from atelier.text.encoder import TextEncoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.pooling import TextPooling
from atelier.text.tokenizer import BPETokenizer
from atelier.text.trainable import TrainableTextEncoder
from atelier.text.transformer import TransformerTextConfig

TextEncoderKind = Literal["transformer", "minilm"]
TEXT_ENCODER_KINDS: tuple[TextEncoderKind, ...] = get_args(TextEncoderKind)


@dataclass
class TextEncoderConfig:
    """Which text encoder to build, and its settings.

    ``kind="transformer"``: a :class:`TrainableTextEncoder` of the given ``width``, ``layers``,
    ``heads``, ``mlp_ratio`` and ``dropout`` over a trained BPE tokenizer, its pooled vector read
    by ``pooling`` (``text/pooling.py``: "mean", "eos" with causal attention, "attention").
    ``kind="minilm"``: the frozen :class:`MiniLMTextEncoder`, caching up to ``cache_size`` prompts,
    its states taken from ``hidden_layer`` (-1 the last, -2 the penultimate, 0 the embeddings),
    and with ``phrases`` each noun phrase's own states after the prompt's (StructureDiffusion).
    ``max_length`` is the token window T of either.
    """

    kind: TextEncoderKind = "transformer"
    max_length: int = 77
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    cache_size: int = 256
    hidden_layer: int = -1
    phrases: bool = False
    pooling: TextPooling = "mean"


def build_text_encoder(
    config: TextEncoderConfig, *, tokenizer: BPETokenizer | None = None
) -> TextEncoder:
    """Build the encoder ``config.kind`` names; ``tokenizer`` is required by, and only by,
    the trainable transformer (its vocabulary sets the embedding table)."""
    if config.phrases and config.kind != "minilm":
        raise ValueError("text_encoder.phrases is for the frozen MiniLM encoder (kind 'minilm')")
    if config.pooling != "mean" and config.kind != "transformer":
        # MiniLM's pooled vector is the mean it was trained to give as a sentence embedding.
        raise ValueError(
            f"text_encoder.pooling={config.pooling!r} is for the trainable transformer "
            "(kind 'transformer'); the frozen MiniLM pools by the mean"
        )
    if config.kind == "transformer":
        if tokenizer is None:
            raise ValueError("kind 'transformer' needs a tokenizer (see train_bpe)")
        transformer = TransformerTextConfig(
            vocab_size=tokenizer.vocab_size,
            max_length=config.max_length,
            width=config.width,
            layers=config.layers,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
            pooling=config.pooling,
        )
        return TrainableTextEncoder(tokenizer, transformer)
    if config.kind == "minilm":
        if tokenizer is not None:
            raise ValueError("kind 'minilm' brings its own tokenizer; do not pass one")
        return MiniLMTextEncoder(max_length=config.max_length, cache_size=config.cache_size,
                                 hidden_layer=config.hidden_layer,
                                 phrases=config.phrases)  # fmt: skip
    raise ValueError(
        f"unknown text encoder kind {config.kind!r}; valid: {', '.join(TEXT_ENCODER_KINDS)}"
    )
