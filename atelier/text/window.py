"""The fixed token window every text encoder reads: ``<bos> tokens... <eos> <pad>...``.

Notation: B prompts, T = ``max_length`` positions per prompt (bos and eos included). Both the
trained BPE tokenizer and MiniLM's WordPiece tokenizer are Hugging Face ``tokenizers`` objects,
so one function lays out, truncates and warns for both.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to about ``limit`` characters for a message: its start, an ellipsis, and
    how much was left out (a 5,000-word prompt must not print a 55 KB warning)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


class PromptTruncatedWarning(UserWarning):
    """A prompt had more tokens than the encoder's window; the tail was dropped."""


@dataclass(frozen=True)
class TokenBatch:
    """Token ids and attention mask of a batch laid out in a fixed window."""

    ids: torch.Tensor  # (B, T) int64
    mask: torch.Tensor  # (B, T) bool, True at bos, the prompt's tokens and eos


def encode_window(
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    max_length: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
) -> TokenBatch:
    """Encode ``prompts`` to ``(B, max_length)`` ids: bos, tokens, eos, then padding.

    A prompt with more than ``max_length - 2`` tokens keeps its first ones and still ends with
    eos; a :class:`PromptTruncatedWarning` names the prompt and the dropped text.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (bos and eos), got {max_length}")
    room = max_length - 2
    ids = torch.full((len(prompts), max_length), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(prompts), max_length), dtype=torch.bool)  # (B, T)
    encodings = tokenizer.encode_batch(list(prompts), add_special_tokens=False)
    for row, (prompt, encoding) in enumerate(zip(prompts, encodings, strict=True)):
        tokens = encoding.ids
        if len(tokens) > room:
            # Offsets point into the caller's own string, so the warning quotes their words
            # rather than a normalised or byte-level rendering of them.
            dropped = prompt[encoding.offsets[room][0] :].strip()
            warnings.warn(
                f"prompt {shorten(prompt)!r} has {len(tokens)} tokens but the window holds "
                f"{room} (max_length={max_length} with bos and eos); dropped {shorten(dropped)!r}",
                PromptTruncatedWarning,
                stacklevel=3,
            )
            tokens = tokens[:room]
        window = [bos_id, *tokens, eos_id]
        ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        mask[row, : len(window)] = True
    return TokenBatch(ids=ids, mask=mask)
