"""A captioned set with false captions per item, for contrastive training with hard negatives.

Item ``i`` is ``(x, caption, (negative_0, ..., negative_{k-1}))``; the training task draws one
negative per sample with :func:`atelier.data.recaption.choose_captions` (the global generator,
checkpointed), as NegCLIP draws one per image each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class WithNegatives:
    """``data[i]`` (an ``(x, caption)`` pair) with ``negatives[i]``, its false captions."""

    def __init__(self, data: Any, negatives: Sequence[Sequence[str]]) -> None:
        if len(negatives) != len(data):
            raise ValueError(f"{len(negatives)} negative lists for {len(data)} items")
        counts = {len(v) for v in negatives}
        if len(counts) != 1 or min(counts) < 1:
            raise ValueError(f"every item needs the same number (>= 1) of negatives, got {counts}")
        self.data = data
        self.negatives = [tuple(v) for v in negatives]

    @property
    def captions(self) -> list[str]:
        """Every item's true caption (tokenizer training, text caches)."""
        kept = getattr(self.data, "captions", None)
        return list(kept) if kept is not None else [self.data[i][1] for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.negatives)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, tuple[str, ...]]:
        x, text = self.data[index]
        return x, text, self.negatives[index]
