"""A captioned image dataset turned into image-tokenizer codes once, for token-model training.

Every image is encoded once by the frozen tokenizer (``encode``: images (B, 3, H, W) -> codes
(B, h, w)) and kept, with its caption, in a safetensors file keyed by the dataset and the
tokenizer's weights, so training steps never run the tokenizer. Item ``i`` is ``(codes,
caption)`` with codes (h, w) long.
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


class TokenDataset:
    """``(codes, caption)`` pairs: ``encode(image)`` for every item of ``images``."""

    def __init__(
        self,
        images: CaptionedImages,
        encode: Callable[[torch.Tensor], torch.Tensor],
        *,
        codebook_size: int,
        cache_file: str | Path | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> None:
        self.resolution = images.resolution
        path = Path(cache_file) if cache_file is not None else None
        if path is not None and path.is_file():
            with safe_open(str(path), framework="pt") as f:
                self.codes = f.get_tensor("codes")
                meta = f.metadata()
            self.captions = json.loads(meta["captions"])
            if len(self.captions) != len(images) or int(meta["codebook_size"]) != codebook_size:
                raise ValueError(f"token cache {path} does not match this dataset; delete it")
            return
        codes, captions = [], []
        with torch.no_grad():
            for start in tqdm(
                range(0, len(images), batch_size), desc="encoding tokens", disable=not progress
            ):
                items = [images[i] for i in range(start, min(start + batch_size, len(images)))]
                x = torch.stack([img for img, _ in items])  # (B, 3, H, W)
                codes.append(encode(x).to(torch.int16 if codebook_size <= 2**15 else torch.int32))
                captions += [text for _, text in items]
        self.codes, self.captions = torch.cat(codes), captions  # (N, h, w)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"captions": json.dumps(captions), "codebook_size": str(codebook_size)}
            write_atomic(path, save({"codes": self.codes.contiguous()}, metadata=meta))

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.codes[index].long(), self.captions[index]
