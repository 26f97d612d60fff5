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

from atelier.text.embeddings import TokenVectors, check_new_words


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

    def __init__(self) -> None:
        super().__init__()
        # Textual inversion's words, once :meth:`add_tokens` has given some.
        self.learned: TokenVectors | None = None

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

    def add_tokens(self, vectors: dict[str, torch.Tensor]) -> TokenVectors:
        """Teach the encoder new words, each read as its own token with the given (D,)
        embedding (textual inversion); returns every learned word's vectors. A word it knows,
        or a vector of another width, is refused naming the fix; a word given again with the
        same vector is kept as it is."""
        words = list(vectors)
        have = self.learned.as_dict() if self.learned is not None else {}
        for word in words:
            if word in have and not torch.equal(have[word], vectors[word].float()):
                raise ValueError(f"{word!r} is learned already with another vector; load one "
                                 "embedding per word")  # fmt: skip
        words = [w for w in words if w not in have]
        check_new_words(words, self._known_words())
        for word in words:
            if tuple(vectors[word].shape) != (self._token_table().embedding_dim,):
                raise ValueError(
                    f"the embedding of {word!r} has shape {tuple(vectors[word].shape)}, but this "
                    f"model's text encoder embeds tokens in {self._token_table().embedding_dim} "
                    "dimensions: it was learned for another text encoder"
                )
        if not words:
            return self.learned
        start = self._token_table().num_embeddings + len(have)
        ids = self._add_to_tokenizer(words)
        if ids != list(range(start, start + len(words))):
            raise ValueError(f"the tokenizer gave the new words ids {ids}, expected from {start}")
        table = self._token_table()
        rows = [v.to(table.weight) for v in have.values()]
        rows += [vectors[w].to(table.weight) for w in words]
        learned = TokenVectors(list(have) + words, torch.stack(rows)).to(table.weight.device)
        # Loaded to be used: a training run switches the gradient on (textual inversion).
        self.learned = learned.requires_grad_(False)
        return self.learned

    def word_embedding(self, word: str) -> torch.Tensor:
        """(D,): the mean of the table's embeddings of ``word``'s tokens (where textual
        inversion starts a new word)."""
        ids = self._word_ids(word)
        if not ids:
            raise ValueError(f"{word!r} has no tokens in this text encoder's vocabulary")
        return self._token_table().weight[ids].detach().float().mean(0)

    def _word_ids(self, word: str) -> list[int]:
        """The token ids of ``word`` alone."""
        raise ValueError(f"{type(self).__name__} cannot learn new words")

    def _token_table(self) -> nn.Embedding:
        """The embedding table of the V trained token ids."""
        raise ValueError(f"{type(self).__name__} cannot learn new words")

    def _known_words(self) -> set[str]:
        """The words the tokenizer reads as one token already."""
        raise ValueError(f"{type(self).__name__} cannot learn new words")

    def _add_to_tokenizer(self, words: list[str]) -> list[int]:
        """Add ``words`` to the tokenizer as whole-word tokens; their ids."""
        raise ValueError(f"{type(self).__name__} cannot learn new words")
