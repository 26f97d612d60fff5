"""Textual inversion's new words (Gal et al., 2022): K token embeddings v_1..v_K (K, D) that a
text encoder reads where a prompt says the word, everything else of it unchanged.

A word is added to the encoder's tokenizer as one token, its id V + k past the V ids the
encoder was trained with; :func:`embed_ids` looks ids below V up in the encoder's own table and
ids from V on in :class:`TokenVectors`. So the table's V rows never change (a training run
gives only v its gradient) and a prompt without a new word encodes exactly as before. Saved as
``learned_embeds.safetensors``, ``{word: (D,) tensor}``, as diffusers and AUTOMATIC1111 read it
(one vector per word).
"""

from __future__ import annotations

import torch
from torch import nn


class TokenVectors(nn.Module):
    """The new words ``tokens`` and their embeddings ``vectors`` (K, D)."""

    def __init__(self, tokens: list[str], vectors: torch.Tensor) -> None:
        super().__init__()
        if len(tokens) != len(vectors) or vectors.ndim != 2:
            raise ValueError(f"{len(tokens)} tokens need a ({len(tokens)}, D) tensor of vectors, "
                             f"got {tuple(vectors.shape)}")  # fmt: skip
        self.tokens = list(tokens)
        self.vectors = nn.Parameter(vectors.detach().clone())

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{word: (D,) float32}``: what ``learned_embeds.safetensors`` holds."""
        return {
            t: v.detach().float().clone().contiguous() for t, v in zip(self.tokens, self.vectors)
        }


def embed_ids(table: nn.Embedding, ids: torch.Tensor, learned: TokenVectors | None) -> torch.Tensor:
    """Token ids (B, T) -> embeddings (B, T, D): ids below V = ``table.num_embeddings`` from the
    table, ids V + k from ``learned.vectors[k]``."""
    if learned is None:
        return table(ids)
    v = table.num_embeddings
    base = table(ids.clamp(max=v - 1))  # (B, T, D)
    new = learned.vectors[(ids - v).clamp(min=0, max=len(learned.tokens) - 1)]  # (B, T, D)
    return torch.where((ids >= v)[..., None], new.to(base.dtype), base)


def check_new_words(words: list[str], known: set[str] | None = None) -> None:
    """Refuse (ValueError) a word that is not one lower-case token of letters, or that the
    tokenizer already knows (``known``): it would change what an existing word means."""
    for word in words:
        if not (word.isascii() and word.isalpha() and word.islower()):
            raise ValueError(f"a learned token must be one lower-case word of letters, "
                             f"got {word!r}")  # fmt: skip
        if known is not None and word in known:
            raise ValueError(f"{word!r} is already a word of this text encoder's vocabulary; "
                             "pick a rare one (e.g. sks) for a learned token")  # fmt: skip
