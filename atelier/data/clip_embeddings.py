"""A captioned image set seen through a frozen CLIP once, for unCLIP's prior and decoder.

Both stages train on CLIP's view of the data: the prior maps a caption (CLIP's text states and
text embedding z_t) to the image's CLIP embedding z_i, and the decoder draws the image from z_i
and the caption. The frozen towers would otherwise run on every optimizer step. So every image's
z_i is computed once (:func:`~atelier.data.encoded.encode_once`) and every caption's encoding
once (:class:`CaptionEncodings`), each kept in a safetensors file whose name the caller derives
from the data and the CLIP's weights.

- :class:`ImageEmbeddingDataset`: item i is ``((image, z_i), caption)``, image (3, S, S) in
  [-1, 1] and z_i (E,); the prior reads z_i, the decoder both.
- :class:`CaptionEncodings`: prompts -> their :class:`~atelier.text.encoder.TextEmbedding` with
  z_t as ``pooled``, looked up instead of encoded; a blank prompt gets the null one (zero states,
  a zero z_t), as CLIP's own towers give it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.data.base import CaptionedImages
from atelier.data.encoded import encode_once
from atelier.text.encoder import TextEmbedding


class ImageEmbeddingDataset:
    """``((image, z_i), caption)`` with z_i = ``encode(image)`` computed once for every item."""

    def __init__(
        self,
        images: CaptionedImages,
        encode: Callable[[torch.Tensor], torch.Tensor],
        *,
        clip_digest: str,
        cache_file: str | Path | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> None:
        self.images = images
        self.resolution = images.resolution
        self.embeddings, self.captions = encode_once(  # (N, E)
            images, encode, name="image_embeddings", settings={"clip": clip_digest},
            cache_file=cache_file, batch_size=batch_size, progress=progress,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
        return (self.images[index][0], self.embeddings[index]), self.captions[index]


class CaptionEncodings:
    """Every one of ``captions`` encoded once by ``encode`` (prompts -> a TextEmbedding with z_t
    as ``pooled``), read from ``cache_file`` when it holds them; then a lookup.

    Only each caption's attended states are kept (its mask must be a prefix of the window, as a
    tokenizer's padding at the end gives): about 16 of 48 rows for a shapes caption.
    """

    def __init__(
        self,
        captions: Sequence[str],
        encode: Callable[[list[str]], TextEmbedding],
        *,
        cache_file: str | Path | None = None,
        batch_size: int = 128,
        progress: bool = True,
    ) -> None:
        unique = list(dict.fromkeys(c for c in captions if c.strip()))
        if not unique:
            raise ValueError("no caption to encode")
        path = Path(cache_file) if cache_file is not None else None
        if path is not None and path.is_file():
            self._read(path, unique)
        else:
            self._encode(unique, encode, batch_size, progress)
            if path is not None:
                self._write(path, unique)
        self.index = {caption: k for k, caption in enumerate(unique)}
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.lengths.cumsum(0)])

    def _encode(self, unique: list[str], encode, batch_size: int, progress: bool) -> None:
        rows, lengths, pooled = [], [], []
        with torch.no_grad():
            for start in tqdm(range(0, len(unique), batch_size), desc="encoding captions",
                              disable=not progress):  # fmt: skip
                text = encode(unique[start : start + batch_size])
                n = text.mask.sum(1)  # (B,)
                if not bool((text.mask == (torch.arange(text.mask.shape[1]) < n[:, None])).all()):
                    raise ValueError("caption masks must be a prefix of the window to be kept")
                rows += [text.states[i, : int(n[i])].cpu() for i in range(len(n))]
                lengths.append(n.cpu())
                pooled.append(text.pooled.cpu())
        self.window = int(text.mask.shape[1])
        self.states = torch.cat(rows).float().contiguous()  # (sum of lengths, W)
        self.lengths = torch.cat(lengths).long()  # (N,)
        self.pooled = torch.cat(pooled).float().contiguous()  # (N, E)

    def _write(self, path: Path, unique: list[str]) -> None:
        tensors = {"states": self.states, "lengths": self.lengths, "pooled": self.pooled}
        meta = {"captions": json.dumps(unique), "window": str(self.window)}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, save(tensors, metadata=meta))

    def _read(self, path: Path, unique: list[str]) -> None:
        try:
            with safe_open(str(path), framework="pt") as f:
                self.states, self.lengths, self.pooled = (
                    f.get_tensor(k) for k in ("states", "lengths", "pooled")
                )
                meta = f.metadata()
        except Exception as error:  # safetensors raises its own error types for a damaged file
            raise ValueError(
                f"the caption cache {path} cannot be read ({error}); delete it"
            ) from None
        if json.loads(meta["captions"]) != unique or int(self.lengths.sum()) != len(self.states):
            raise ValueError(f"the caption cache {path} does not match these captions; delete it")
        self.window = int(meta["window"])

    def __call__(self, prompts: Sequence[str]) -> TextEmbedding:
        """The encodings of ``prompts`` (B,): each one given at construction, or blank."""
        b, width = len(prompts), self.states.shape[1]
        states = torch.zeros(b, self.window, width)
        mask = torch.zeros(b, self.window, dtype=torch.bool)
        mask[:, 0] = True  # the null embedding's one attendable position
        pooled = torch.zeros(b, self.pooled.shape[1])
        for i, prompt in enumerate(prompts):
            if not prompt.strip():
                continue
            k = self.index.get(prompt)
            if k is None:
                raise KeyError(f"the caption {prompt!r} was not encoded beforehand")
            n, start = int(self.lengths[k]), int(self.offsets[k])
            states[i, :n] = self.states[start : start + n]
            mask[i, :n] = True
            pooled[i] = self.pooled[k]
        return TextEmbedding(states, mask, pooled)
