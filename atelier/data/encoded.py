"""A captioned image dataset passed through a frozen encoder once, and cached.

Latent diffusion trains on an autoencoder's latents and token models on a tokenizer's codes;
running the frozen encoder on every optimizer step would cost its forward pass each time. So
:func:`encode_once` encodes every image once, in batches, and keeps the result with the captions
in a safetensors file (under a key that names the dataset and the encoder's weights), which
later runs read instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.data.base import CaptionedImages


def encode_once(
    images: CaptionedImages,
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    name: str,
    settings: dict[str, str],
    cache_file: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[torch.Tensor, list[str]]:
    """``encode`` (images (B, 3, H, W) -> (B, ...)) of every item of ``images``, stacked, and
    the captions. ``name`` is the tensor's name in the cache; ``settings`` are what the cache
    must have been made with (a latent scale, a codebook size): a cache that differs in them
    or in length is refused, naming the file to delete."""
    path = Path(cache_file) if cache_file is not None else None
    if path is not None and path.is_file():
        with safe_open(str(path), framework="pt") as f:
            encoded = f.get_tensor(name)
            meta = f.metadata()
        captions = json.loads(meta["captions"])
        if len(captions) != len(images) or any(meta.get(k) != v for k, v in settings.items()):
            raise ValueError(f"{name} cache {path} does not match this dataset; delete it")
        return encoded, captions
    parts, captions = [], []
    with torch.no_grad():
        for start in tqdm(
            range(0, len(images), batch_size), desc=f"encoding {name}", disable=not progress
        ):
            items = [images[i] for i in range(start, min(start + batch_size, len(images)))]
            parts.append(encode(torch.stack([img for img, _ in items])))  # (B, 3, H, W) in
            captions += [text for _, text in items]
    encoded = torch.cat(parts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"captions": json.dumps(captions), **settings}
        write_atomic(path, save({name: encoded.contiguous()}, metadata=meta))
    return encoded, captions
