"""The text side of atelier: tokenizers and text encoders behind one contract.

Every encoder maps a batch of prompts to a :class:`TextEmbedding` (states (B, T, D), mask (B, T),
pooled (B, P)) padded to its fixed window T; the blank prompt maps to the null embedding used by
classifier-free guidance. Two encoders implement :class:`TextEncoder`:

- ``window.py``: the fixed ``<bos> tokens <eos> <pad>`` layout and :class:`PromptTruncatedWarning`
- ``tokenizer.py``: :func:`train_bpe` and :class:`BPETokenizer` (one ``tokenizer.json``)
- ``transformer.py``: :class:`TransformerText`, the trainable network, and its config
- ``pooling.py``: how that network's states become its pooled vector (mean, eos, attention)
- ``encoder.py``: :class:`TextEncoder` and :class:`TextEmbedding`, the contract
- ``trainable.py``: :class:`TrainableTextEncoder`, tokenizer + transformer, saved as a folder
- ``minilm.py``: :class:`MiniLMTextEncoder`, frozen all-MiniLM-L6-v2 with an LRU prompt cache
- ``state_cache.py``: :func:`preload_text_states`, training captions' frozen states on disk
- ``factory.py``: :class:`TextEncoderConfig` and :func:`build_text_encoder`
"""

from atelier.text.cache import LRUCache
from atelier.text.encoder import TextEmbedding, TextEncoder
from atelier.text.factory import (
    TEXT_ENCODER_KINDS,
    TextEncoderConfig,
    TextEncoderKind,
    build_text_encoder,
)
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.tokenizer import BPETokenizer, train_bpe
from atelier.text.trainable import TrainableTextEncoder
from atelier.text.transformer import TransformerText, TransformerTextConfig
from atelier.text.window import PromptTruncatedWarning, TokenBatch

__all__ = [
    "TEXT_ENCODER_KINDS",
    "BPETokenizer",
    "LRUCache",
    "MiniLMTextEncoder",
    "PromptTruncatedWarning",
    "TextEmbedding",
    "TextEncoder",
    "TextEncoderConfig",
    "TextEncoderKind",
    "TokenBatch",
    "TrainableTextEncoder",
    "TransformerText",
    "TransformerTextConfig",
    "build_text_encoder",
    "train_bpe",
]
