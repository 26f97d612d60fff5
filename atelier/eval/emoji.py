"""Scores of the emoji set that a trained CLIP gives: R-precision of names, zero-shot category
accuracy, and the emoji suite's prompts (``atelier eval --suite emoji``).

The folder ``atelier data emoji`` writes keeps each picture's ``name`` ("red apple") and
``category`` ("Food & Drink") in its ``metadata.jsonl``. Held-out names are those no training
run sees (with every skin tone of them), so a CLIP's R-precision on them says whether it reads
names it never learnt; chance is stated beside every score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from atelier.data.real import metadata_rows
from atelier.eval.clip_metrics import zero_shot_probabilities
from atelier.models.clip import CLIP

SEEN_PROMPTS = 64


def category_label(category: str) -> str:
    """The text a category is classified by: its name, lower-case ("food & drink")."""
    return category.lower()


@dataclass(frozen=True)
class CategoryAccuracy:
    """Zero-shot category accuracy: over images (``accuracy``) and the mean of the categories'
    own accuracies (``balanced``), beside ``chance`` (1 / the categories present) and
    ``majority`` (the share of the most common category: what always naming it scores)."""

    accuracy: float
    balanced: float
    chance: float
    majority: float
    categories: int
    images: int


@torch.no_grad()
def category_accuracy(clip: CLIP, images: torch.Tensor,
                      categories: Sequence[str]) -> CategoryAccuracy:  # fmt: skip
    """Zero-shot classification of ``images`` among the categories present in ``categories``
    (one per image), each named by :func:`category_label`."""
    if len(images) != len(categories) or not len(categories):
        raise ValueError(f"need one category per image: {len(images)} images, "
                         f"{len(categories)} categories")  # fmt: skip
    present = sorted(set(categories))
    if len(present) < 2:
        raise ValueError("zero-shot category accuracy needs at least two categories")
    truth = torch.tensor([present.index(c) for c in categories])
    predicted = zero_shot_probabilities(clip, images, [category_label(c) for c in present])
    right = (predicted.argmax(-1) == truth).float()
    balanced = torch.stack([right[truth == k].mean() for k in range(len(present))]).mean()
    counts = Counter(categories)
    return CategoryAccuracy(float(right.mean()), float(balanced), 1 / len(present),
                            max(counts.values()) / len(categories), len(present),
                            len(categories))  # fmt: skip


@dataclass(frozen=True)
class EmojiPrompt:
    """One prompt of the emoji suite: a picture's caption, its name and category, and whether
    the name is one training saw (``seen``) or a held-out one (``held_out``)."""

    id: str
    prompt: str
    name: str
    category: str
    split: str


def emoji_prompts(folder: Path, *, seen: int = SEEN_PROMPTS) -> list[EmojiPrompt]:
    """The captions of every held-out picture of a built emoji folder (so the generated set
    mirrors the held-out pictures FID compares with), then ``seen`` training captions spread
    over the training half."""
    held = list(metadata_rows(Path(folder) / "heldout").values())
    train = list(metadata_rows(Path(folder) / "train").values())
    step = max(len(train) // max(seen, 1), 1)
    picked = train[::step][:seen]
    out = []
    for split, rows in (("held_out", held), ("seen", picked)):
        for row in rows:
            key = Path(row["file_name"]).stem
            out.append(EmojiPrompt(f"{split}-{key}", row["text"], row["name"], row["category"],
                                   split))  # fmt: skip
    return out
