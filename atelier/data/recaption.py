"""Several true captions per image, one drawn each time the image is.

A captioned set with one fixed caption per image shows the model each scene under one word order
and one choice of stated facts for every epoch. :class:`Recaptioned` pairs item ``i`` with a
tuple of alternative captions; the training task picks one per sample with its own random state
(checkpointed, so a resumed run draws what the killed one would have), through
:func:`choose_captions`. This is caption augmentation as in training on several captions per
image (for example DALL-E 3's mix of synthetic and original captions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def per_item(lists: Sequence[Sequence[str]], n: int, what: str) -> list[tuple[str, ...]]:
    """``lists`` as tuples, checked to give each of ``n`` items the same number (>= 1)."""
    if len(lists) != n:
        raise ValueError(f"{len(lists)} lists of {what} for {n} items")
    counts = {len(v) for v in lists}
    if len(counts) != 1 or min(counts) < 1:
        raise ValueError(f"every item needs the same number (>= 1) of {what}, got {counts}")
    return [tuple(v) for v in lists]


class Recaptioned:
    """``(x, (caption_0, ..., caption_{k-1}))`` for item ``i`` of ``data``, where ``data[i]``
    is ``(x, caption)`` and ``variants[i]`` lists that item's captions."""

    def __init__(self, data: Any, variants: Sequence[Sequence[str]]) -> None:
        self.data = data
        self.variants = per_item(variants, len(data), "captions")

    @property
    def captions(self) -> list[str]:
        """Every caption of every item (for the text-state cache and tokenizer training)."""
        return [text for variants in self.variants for text in variants]

    def __len__(self) -> int:
        return len(self.variants)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, tuple[str, ...]]:
        return self.data[index][0], self.variants[index]


def choose_captions(captions: Sequence[str] | Sequence[Sequence[str]]) -> list[str]:
    """One caption per sample from a collated batch.

    A batch of plain captions (B strings) comes back as it is. A batch of :class:`Recaptioned`
    items arrives from the default collate as k sequences of B strings (variant j of every
    sample); each sample gets a uniformly drawn variant from the global torch generator.
    """
    if len(captions) == 0 or isinstance(captions[0], str):
        return list(captions)  # type: ignore[arg-type]
    variants = [list(v) for v in captions]
    b = len(variants[0])
    pick = torch.randint(len(variants), (b,)).tolist()
    return [variants[j][i] for i, j in enumerate(pick)]
