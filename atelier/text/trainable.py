"""The trainable text encoder: a caption-trained BPE tokenizer feeding :class:`TransformerText`.

Saved as a folder of three files, each written atomically and none of them pickle:
``config.json`` (the :class:`TransformerTextConfig`), ``model.safetensors`` (the weights) and
``tokenizer.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from atelier.atomic import write_atomic
from atelier.safeload import build_and_load, check_config_values
from atelier.text.embeddings import embed_ids
from atelier.text.encoder import TextEncoder
from atelier.text.tokenizer import BPETokenizer
from atelier.text.transformer import TransformerText, TransformerTextConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
KIND = "transformer"


class TrainableTextEncoder(TextEncoder):
    """Text encoder trained together with the image model; D = P = ``config.width``."""

    def __init__(self, tokenizer: BPETokenizer, config: TransformerTextConfig) -> None:
        super().__init__()
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"config.vocab_size={config.vocab_size} but the tokenizer has "
                f"{tokenizer.vocab_size} ids"
            )
        self.tokenizer = tokenizer
        self.config = config
        self.model = TransformerText(config)
        self.dim = config.width
        self.pooled_dim = config.width
        self.max_length = config.max_length
        self.trainable = True

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.tokenizer.encode(prompts, max_length=self.max_length)
        mask = batch.mask.to(self.device)  # (B, T)
        ids = batch.ids.to(self.device)
        embeds = embed_ids(self.model.token_embedding, ids, self.learned)  # (B, T, D)
        states, pooled = self.model(ids, mask, token_embeds=embeds)  # (B, T, D), (B, D)
        return states, mask, pooled

    def _token_table(self) -> torch.nn.Embedding:
        return self.model.token_embedding

    def _known_words(self) -> set[str]:
        return self.tokenizer.words()

    def _word_ids(self, word: str) -> list[int]:
        return self.tokenizer.word_ids(word)

    def _add_to_tokenizer(self, words: list[str]) -> list[int]:
        return self.tokenizer.add_words(words)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write config, weights and tokenizer into ``folder`` (created if needed)."""
        directory = Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(directory)
        # Learned words travel in their own learned_embeds file, not in the encoder's.
        weights = {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.state_dict().items()
            if not name.startswith("learned.")
        }
        write_atomic(directory / WEIGHTS_FILE, safetensors_bytes(weights))
        config = {"kind": KIND, **asdict(self.config)}
        write_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], *, device: str | torch.device = "cpu"
    ) -> TrainableTextEncoder:
        """Rebuild an encoder written by :meth:`save`, with its weights on ``device``."""
        directory = Path(folder)
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        kind = config.pop("kind", None)
        if kind != KIND:
            raise ValueError(f"{directory / CONFIG_FILE} holds kind {kind!r}, expected {KIND!r}")
        check_config_values(config, f"{directory / CONFIG_FILE}")
        tokenizer = BPETokenizer.load(directory)
        try:
            text_config = TransformerTextConfig(**config)
        except TypeError as err:
            raise ValueError(
                f"{directory / CONFIG_FILE} is not a text encoder config ({err})"
            ) from None
        encoder = build_and_load(lambda: cls(tokenizer, text_config), directory / WEIGHTS_FILE,
                                 what="the text encoder")  # fmt: skip
        return encoder.to(device)
