"""A captioned set with false captions per item, for contrastive training with hard negatives.

Item ``i`` is ``(x, caption, (negative_0, ..., negative_{k-1}))``; the training task draws one
negative per sample with :func:`atelier.data.recaption.choose_captions` (the global generator,
checkpointed), as NegCLIP draws one per image each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from atelier.data.recaption import per_item


class WithNegatives:
    """``data[i]`` (an ``(x, caption)`` pair) with ``negatives[i]``, its false captions."""

    def __init__(self, data: Any, negatives: Sequence[Sequence[str]]) -> None:
        self.data = data
        self.negatives = per_item(negatives, len(data), "negatives")

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
