"""The one text-encoder contract every image model conditions on.

Notation: B prompts, T = the encoder's ``max_length``, D = ``dim`` (per-token width), P =
``pooled_dim``. Every encoder returns a :class:`TextEmbedding` padded to its own fixed T, with
states zeroed wherever the mask is False, so batches from different encoders share one layout.

The empty prompt (after stripping whitespace) is the unconditional input of classifier-free
guidance. It is defined here, once, for all encoders: states all zero, mask True only at
position 0 (an attention row is never fully masked), pooled all zero.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TextEmbedding:
    """Encoded prompts: what a text-conditioned image model receives."""

    states: torch.Tensor  # (B, T, D), zero where mask is False
    mask: torch.Tensor  # (B, T) bool, True at positions to attend to
    pooled: torch.Tensor  # (B, P)

    def __len__(self) -> int:
        """B, the number of prompts (as for a batch of token ids)."""
        return len(self.states)

    def to(self, device: torch.device | str) -> TextEmbedding:
        """The same embedding on ``device``."""
        return TextEmbedding(self.states.to(device), self.mask.to(device), self.pooled.to(device))


class TextEncoder(nn.Module, ABC):
    """Prompts -> :class:`TextEmbedding`; subclasses implement :meth:`_encode` for real prompts.

    Attributes: ``dim`` (D), ``pooled_dim`` (P), ``max_length`` (T) and ``trainable`` (whether
    its parameters are meant to be optimised with the image model).
    """

    dim: int
    pooled_dim: int
    max_length: int
    trainable: bool

    @property
    def device(self) -> torch.device:
        """Device of the encoder's parameters, where its outputs are made."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the encoder's parameters and outputs."""
        return next(self.parameters()).dtype

    def null_embedding(self, batch: int) -> TextEmbedding:
        """The unconditional embedding, repeated ``batch`` times (see the module docstring)."""
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        device, dtype = self.device, self.dtype
        mask = torch.zeros(batch, self.max_length, dtype=torch.bool, device=device)  # (B, T)
        mask[:, 0] = True
        return TextEmbedding(
            states=torch.zeros(batch, self.max_length, self.dim, dtype=dtype, device=device),
            mask=mask,
            pooled=torch.zeros(batch, self.pooled_dim, dtype=dtype, device=device),
        )

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Encode a batch of prompts; blank prompts get the null embedding."""
        if isinstance(prompts, str):
            raise TypeError("encode takes a sequence of prompts, not a single string")
        if not prompts:
            raise ValueError("encode needs at least one prompt")
        null = self.null_embedding(len(prompts))
        rows = [i for i, prompt in enumerate(prompts) if prompt.strip()]
        if not rows:
            return null
        states, mask, pooled = self._encode([prompts[i] for i in rows])
        # Padded positions carry no meaning; zeroing them makes every encoder's layout match the
        # null embedding's, so nothing downstream can pick up an encoder's padding artefacts.
        states = states.masked_fill(~mask.unsqueeze(-1), 0.0)  # (R, T, D)
        index = torch.tensor(rows, device=self.device)
        return TextEmbedding(
            states=null.states.index_copy(0, index, states),
            mask=null.mask.index_copy(0, index, mask),
            pooled=null.pooled.index_copy(0, index, pooled),
        )

    @abstractmethod
    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Non-blank prompts -> ``(states (R, T, D), mask (R, T) bool, pooled (R, P))``."""
