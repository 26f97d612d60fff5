"""A byte-level BPE tokenizer trained on the training captions, kept in one ``tokenizer.json``.

Text is normalised (NFKC, lower case, runs of whitespace to one space, stripped), split at
whitespace and punctuation (the GPT-2 pre-tokenizer pattern), then BPE-merged over bytes. Bytes
make the base alphabet, so any text encodes without ``<unk>`` and ``decode(encode(text))`` gives
back ``normalize(text)`` exactly. ``<unk>`` is still reserved so the special-token layout is the
usual one: ids 0..3 are ``<pad> <bos> <eos> <unk>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from atelier.atomic import write_atomic
from atelier.text.window import TokenBatch, encode_window

TOKENIZER_FILE = "tokenizer.json"
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
BYTE_ALPHABET_SIZE = 256


class BPETokenizer:
    """Encode prompts to fixed-window ids and back; wraps a Hugging Face ``tokenizers`` BPE."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        missing = [token for token in SPECIAL_TOKENS if tokenizer.token_to_id(token) is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}; needs {SPECIAL_TOKENS}")
        self._tokenizer = tokenizer
        self.pad_id: int = tokenizer.token_to_id(PAD)
        self.bos_id: int = tokenizer.token_to_id(BOS)
        self.eos_id: int = tokenizer.token_to_id(EOS)
        self.unk_id: int = tokenizer.token_to_id(UNK)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return self._tokenizer.get_vocab_size()

    def normalize(self, text: str) -> str:
        """The text as the tokenizer sees it (NFKC, lower case, single spaces, stripped)."""
        return self._tokenizer.normalizer.normalize_str(text)

    def encode(self, prompts: Sequence[str], *, max_length: int) -> TokenBatch:
        """Ids ``(B, max_length)`` laid out as ``<bos> tokens <eos> <pad>...`` and their mask.

        Prompts longer than the window are truncated with a ``PromptTruncatedWarning``.
        """
        return encode_window(
            self._tokenizer,
            prompts,
            max_length=max_length,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            pad_id=self.pad_id,
        )

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of one row of ids; special tokens (bos, eos, padding) are skipped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def words(self) -> set[str]:
        """Every token of the vocabulary."""
        return set(self._tokenizer.get_vocab())

    def word_ids(self, word: str) -> list[int]:
        """The ids of ``word`` as it reads inside a prompt (after a space)."""
        return self._tokenizer.encode(" " + word, add_special_tokens=False).ids

    def add_words(self, words: list[str]) -> list[int]:
        """Add ``words`` as whole-word tokens (textual inversion's); their ids."""
        # lstrip: the space before the word is part of it, as a BPE word's "Ġ" prefix is.
        self._tokenizer.add_tokens([AddedToken(w, single_word=True, lstrip=True, normalized=True)
                                    for w in words])  # fmt: skip
        return [self._tokenizer.token_to_id(w) for w in words]

    def to_str(self) -> str:
        """The whole tokenizer as the JSON text :meth:`save` writes (a model hash reads it)."""
        return self._tokenizer.to_str(pretty=True)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/tokenizer.json`` atomically, creating the folder; returns the file."""
        directory = Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        return write_atomic(directory / TOKENIZER_FILE, self.to_str())

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> BPETokenizer:
        """Read ``folder/tokenizer.json`` as written by :meth:`save`."""
        return cls(Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE)))


def train_bpe(
    captions: Iterable[str],
    *,
    vocab_size: int = 4096,
    min_frequency: int = 2,
) -> BPETokenizer:
    """Train a byte-level BPE tokenizer on ``captions``.

    ``vocab_size`` is an upper bound: a small caption set runs out of merges that occur at
    least ``min_frequency`` times before reaching it.
    """
    smallest = BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size must be at least {smallest} (bytes + specials)")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be at least 1, got {min_frequency}")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(captions, trainer=trainer)
    return BPETokenizer(tokenizer)
