"""BERT's encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding"), as a frozen text encoder runs it, loaded from a folder in transformers'
layout (``config.json``, ``model.safetensors``) without importing transformers.

Notation: B sequences, T tokens, D = ``hidden_size`` (the paper's H), A = ``num_attention_heads``,
d = D / A per head, L = ``num_hidden_layers``, D_ff = ``intermediate_size`` (4H in the paper).

    E   = LayerNorm(word + segment + position embeddings)                 (B, T, D)
    per layer, post-LayerNorm:
    h'  = LayerNorm(h + W_O MultiHead(h W_Q, h W_K, h W_V; padding mask))  (B, T, D)
    h'' = LayerNorm(h' + W_2 GELU(W_1 h'))                                 (B, T, D)

GELU is the exact one (with erf). The padding mask keeps padded keys out of every query's softmax
(SDPA adds -inf to their scores). The network returns all L + 1 hidden states: E, then each
layer's output. Parameter names are the checkpoint's (``encoder.layer.0.attention.self.query``),
so weights load by name. Dropout is left out: this BERT is only ever run frozen, in eval mode.

Parity: every operation is the one transformers' ``BertModel`` does, in its order, on tensors of
the same layout (three projections rather than one fused, a boolean (B, 1, T, T) mask and none
at all when no token is padding, the same SDPA scale), so the states are bit for bit those of
transformers on the same CPU: models trained on transformers' states read the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from atelier.safeload import build_and_load, check_config_values

# Tensors a transformers checkpoint may hold that this encoder does not use: buffers older
# versions saved (positions 0..T-1, all-zero segments) and the next-sentence pooler over [CLS].
UNUSED_KEYS = frozenset(
    {
        "embeddings.position_ids",
        "embeddings.token_type_ids",
        "pooler.dense.weight",
        "pooler.dense.bias",
    }
)
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT, as ``config.json`` states it (transformers' field names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value, whole = getattr(self, f.name), f.type == "int"
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
                kind = "a whole number" if whole else "a number"
                raise ValueError(f"{f.name} must be {kind}, got {value!r}")
            if whole and f.name != "pad_token_id" and value < 1:
                raise ValueError(f"{f.name} must be positive, got {value}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")  # fmt: skip
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be in [0, {self.vocab_size}), "
                             f"got {self.pad_token_id}")  # fmt: skip
        if not 0 < self.layer_norm_eps < 1:
            raise ValueError(f"layer_norm_eps must be in (0, 1), got {self.layer_norm_eps}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str) -> BertConfig:
        """The config of ``values`` (a transformers ``config.json``), refusing (ValueError) one
        this encoder would not run as its author meant: another architecture or activation,
        relative positions, a decoder. Other fields (dropout rates, init ranges) are ignored."""
        check_config_values(values, where)  # num_hidden_layers is bounded as a depth
        required = {
            "model_type": "bert",
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
            "is_decoder": False,
            "add_cross_attention": False,
        }
        for name, expected in required.items():
            if name in values and values[name] != expected:
                raise ValueError(f"{where}: {name} is {values[name]!r}; only {expected!r} is "
                                 "supported")  # fmt: skip
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in values.items() if k in names})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} is not a valid BERT config ({err})") from None


class BertEmbeddings(nn.Module):
    """E = LayerNorm(word + segment + position embeddings): word vectors (B, T, D) -> (B, T, D)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        D = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, D, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, D)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, D)
        self.LayerNorm = nn.LayerNorm(D, eps=config.layer_norm_eps)

    def forward(self, words: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """``words`` (B, T, D), already looked up, and segment ids (B, T) -> E (B, T, D)."""
        positions = torch.arange(words.shape[1], device=words.device)[None]  # (1, T)
        # Sum in transformers' order, (word + segment) + position: float addition is not
        # associative, and the other order moves the last bit of some states.
        x = words + self.token_type_embeddings(segments)
        x = x + self.position_embeddings(positions)
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    """The A heads' scaled dot-product attention over the sequence: (B, T, D) -> (B, T, D)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        D = config.hidden_size
        self.heads = config.num_attention_heads
        self.query = nn.Linear(D, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D)

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """``h`` (B, T, D); ``keep`` (B, 1, T, T) True where a query may read a key, or None."""
        B, T, D = h.shape
        d = D // self.heads
        q, k, v = (p(h).view(B, T, self.heads, d).transpose(1, 2)  # (B, A, T, d)
                   for p in (self.query, self.key, self.value))  # fmt: skip
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=d**-0.5)  # (B, A, T, d)
        return y.transpose(1, 2).reshape(B, T, D)


class BertSelfOutput(nn.Module):
    """W_O, then the residual and LayerNorm: LayerNorm(h + W_O y)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(y) + h)


class BertAttention(nn.Module):
    """h' = LayerNorm(h + W_O MultiHead(h)); ``self`` and ``output`` are the checkpoint's names."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(h, keep), h)


class BertIntermediate(nn.Module):
    """GELU(W_1 h'): (B, T, D) -> (B, T, D_ff)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(h))


class BertOutput(nn.Module):
    """LayerNorm(h' + W_2 u): (B, T, D_ff) and the residual (B, T, D) -> (B, T, D)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(u) + h)


class BertLayer(nn.Module):
    """One post-LayerNorm transformer layer: self-attention, then the feed-forward network."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        h = self.attention(h, keep)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    """The stack of L layers (``encoder.layer.N`` in a checkpoint)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class Bert(nn.Module):
    """Token ids (or their word embeddings) and a padding mask -> the L + 1 hidden states."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def forward(
        self,
        ids: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        words: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Token ``ids`` (B, T), or ``words`` (B, T, D) to read in place of their table lookup
        (textual inversion's vectors); ``mask`` (B, T) True at real tokens (None: all real);
        ``segments`` (B, T) sentence A/B ids (None: all A). Returns (E, h_1, ..., h_L), each
        (B, T, D)."""
        if (ids is None) == (words is None):
            raise ValueError("pass token ids or their word embeddings, not both or neither")
        if words is None:
            words = self.embeddings.word_embeddings(ids)
        B, T, _ = words.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"{T} tokens is over BERT's {self.config.max_position_embeddings} "
                             "positions")  # fmt: skip
        if segments is None:
            segments = torch.zeros(B, T, dtype=torch.long, device=words.device)
        keep = None
        if mask is not None and not mask.all():
            # Every query reads the same keys, in transformers' materialised (B, 1, T, T) form:
            # SDPA's kernels then take the path, and the rounding, they take for transformers.
            keep = mask.bool()[:, None, None, :].expand(B, 1, T, T).contiguous()
        states = [self.embeddings(words, segments)]
        for layer in self.encoder.layer:
            states.append(layer(states[-1], keep))
        return tuple(states)


def load_bert(folder: Path) -> Bert:
    """The BERT in ``folder`` (``config.json`` and ``model.safetensors``, transformers' layout).

    The folder may come from anyone: its config is bounded before anything is allocated, the
    network is sized against the budget, and every tensor the network needs must be in the file
    with its shape (extra ones other than :data:`UNUSED_KEYS` are refused). Pickled weights
    (``pytorch_model.bin``) are never read.
    """
    config_file, weights = folder / "config.json", folder / "model.safetensors"
    if not weights.is_file() and (folder / "pytorch_model.bin").is_file():
        raise ValueError(f"{folder} holds only pytorch_model.bin, a pickle atelier never loads; "
                         "convert it to model.safetensors")  # fmt: skip
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} is missing; the model folder is incomplete")
    if config_file.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{config_file} is over {MAX_CONFIG_BYTES:,} bytes; not a BERT config")
    try:
        values = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_file} is not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{config_file} must hold a JSON object")
    config = BertConfig.from_dict(values, str(config_file))
    return build_and_load(
        lambda: Bert(config), weights, what="BERT", ignored=UNUSED_KEYS, assign=True
    )
