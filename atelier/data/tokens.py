"""A captioned image dataset turned into image-tokenizer codes once, for token-model training.

Every image is encoded once by the frozen tokenizer (``encode``: images (B, 3, H, W) -> codes
(B, h, w)) and kept, with its caption, in a safetensors file keyed by the dataset and the
tokenizer's weights, so training steps never run the tokenizer. Item ``i`` is ``(codes,
caption)`` with codes (h, w) long.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from atelier.data.base import CaptionedImages
from atelier.data.encoded import encode_once


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
        small = torch.int16 if codebook_size <= 2**15 else torch.int32
        self.codes, self.captions = encode_once(  # (N, h, w)
            images, lambda x: encode(x).to(small), name="codes",
            settings={"codebook_size": str(codebook_size)}, cache_file=cache_file,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.codes[index].long(), self.captions[index]
