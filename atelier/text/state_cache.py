"""Frozen text states kept on disk, so a frozen encoder reads each training caption once per
machine rather than once per training process.

A run of a frozen-encoder model (MiniLM) would otherwise have the encoder read all its captions
again on its first pass through the data, in every process: a resumed or continued run pays it
again. :func:`preload_text_states` fills the encoder's LRU prompt cache from a safetensors file
named by the encoder's weights, layer and window and by the captions, and writes that file when it
is missing. Only each prompt's unmasked rows are stored (the UNet never attends to masked ones),
concatenated: about 15 of the 48 window rows for a shapes caption.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.digest import state_digest
from atelier.text.minilm import MiniLMTextEncoder


def text_state_key(encoder: MiniLMTextEncoder, prompts: list[str]) -> str:
    """A file name for ``prompts``' states: the encoder's weights, layer and window, the prompts."""
    weights = state_digest(("bert", encoder.bert))
    names = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:12]
    phrases = "-phrases" if encoder.phrases else ""
    return (
        f"text-{weights}-l{encoder.hidden_layer}-t{encoder.max_length}{phrases}-{names}.safetensors"
    )


def preload_text_states(
    encoder: MiniLMTextEncoder,
    prompts: list[str],
    cache_dir: str | Path,
    *,
    batch_size: int = 128,
    progress: bool = True,
) -> int:
    """Put every one of ``prompts`` (deduplicated) in ``encoder``'s prompt cache, from the file
    under ``cache_dir`` that holds them or by encoding them and writing it. Returns how many
    prompts were encoded (0 when the file held them all).
    """
    unique = list(dict.fromkeys(prompts))
    if encoder.cache.capacity < len(unique):
        raise ValueError(
            f"the text encoder's cache holds {encoder.cache.capacity} prompts, fewer than the "
            f"{len(unique)} to preload; raise text_encoder.cache_size to at least {len(unique)}"
        )
    path = Path(cache_dir) / text_state_key(encoder, unique)
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                rows, lengths, pooled = (f.get_tensor(k) for k in ("states", "lengths", "pooled"))
        except Exception as error:  # safetensors raises its own error types for a damaged file
            raise ValueError(
                f"the text-state cache {path} cannot be read ({error}); delete it and it will be "
                "rebuilt"
            ) from None
        _fill(encoder, unique, rows, lengths, pooled, path)
        return 0
    kept, lengths, pooled = [], [], []
    for start in tqdm(
        range(0, len(unique), batch_size), desc="encoding captions", disable=not progress
    ):
        states, mask, batch_pooled = encoder.encode_uncached(unique[start : start + batch_size])
        for i in range(len(states)):
            n = int(mask[i].sum())  # the window layout keeps the valid rows first
            kept.append(states[i, :n].cpu())
            lengths.append(n)
        pooled.append(batch_pooled.cpu())
    tensors = {
        "states": torch.cat(kept).contiguous(),  # (sum of lengths, D)
        "lengths": torch.tensor(lengths, dtype=torch.int32),  # (N,)
        "pooled": torch.cat(pooled).contiguous(),  # (N, D)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save(tensors, metadata={"prompts": str(len(unique))}))
    _fill(encoder, unique, tensors["states"], tensors["lengths"], tensors["pooled"], path)
    return len(unique)


def _fill(
    encoder: MiniLMTextEncoder,
    prompts: list[str],
    rows: torch.Tensor,
    lengths: torch.Tensor,
    pooled: torch.Tensor,
    path: Path,
) -> None:
    if {len(lengths), len(pooled)} != {len(prompts)} or int(lengths.sum()) != len(rows):
        raise ValueError(f"the text-state cache {path} does not match its prompts; delete it")
    window, offset = encoder.max_length, 0
    for prompt, n, vector in zip(prompts, lengths.tolist(), pooled, strict=True):
        states = rows.new_zeros(window, rows.shape[1])  # (T, D)
        states[:n] = rows[offset : offset + n]
        mask = torch.zeros(window, dtype=torch.bool)
        mask[:n] = True
        encoder.cache.put(prompt, (states, mask, vector.clone()))
        offset += n
