"""What the sample grids of a text-to-image run on a real set draw, and what measures them.

- MNIST digits: four of the training phrasings for each digit, and, when the digit judge is
  installed (``atelier train mnist-classifier``), the share of the grid it reads as asked.
- Emoji: 24 training captions and 24 held-out ones (names no run sees), spread over the data;
  no judge exists for them, so the grid is only drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor
from atelier.data.folder import ImageFolderDataset
from atelier.eval.digits import digit_prompts, judge_digits
from atelier.kinds.digit_classifier import load_digit_classifier
from atelier.training.ldm import SampleScores
from atelier.training.recipe import Recipe
from atelier.training.recipe_data import captions, held_out_half

DIGIT_JUDGE = "mnist-classifier"
SEEN_TEMPLATES_IN_GRID = 4


def no_scores(pipe: Any, images: Sequence[Image.Image],
              prompts: Sequence[str]) -> dict[str, float]:  # fmt: skip
    """Nothing to measure: the grid is only drawn."""
    return {}


def digit_sample_scores(digits: Sequence[int]) -> SampleScores:
    """The digit judge's share of the grid read as asked (``digits``: one per sample prompt),
    or no scores, with a note, when the judge is not installed."""
    try:
        classifier = load_digit_classifier(DIGIT_JUDGE)
    except (FileNotFoundError, ValueError) as err:
        print(f"note: sample grids are not judged ({err}); `atelier train {DIGIT_JUDGE}` "
              "trains the judge")  # fmt: skip
        return no_scores

    def scores(pipe: Any, images: Sequence[Image.Image],
               prompts: Sequence[str]) -> dict[str, float]:  # fmt: skip
        x = torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])
        return {"digit_accuracy": judge_digits(x, list(digits), classifier=classifier).accuracy}

    return scores


def real_samples(recipe: Recipe, images, data_dir: Path | None,
                 n: int = 48) -> tuple[list[str], SampleScores]:  # fmt: skip
    """The sample prompts of a run on ``recipe.data.source``'s pictures, and their scores."""
    if recipe.data.source == "mnist":
        chosen = [p for p in digit_prompts() if p.split == "seen"]
        per_digit = len(chosen) // 10
        chosen = [p for k, p in enumerate(chosen) if k % per_digit < SEEN_TEMPLATES_IN_GRID]
        return [p.prompt for p in chosen], digit_sample_scores([p.digit for p in chosen])
    seen = list(dict.fromkeys(captions(images)))
    held: list[str] = []
    folder = held_out_half(recipe, data_dir)
    if folder is not None:
        held = list(dict.fromkeys(captions(ImageFolderDataset(folder, resolution=16))))
    half = n // 2 if held else n
    prompts = _spread(seen, half) + _spread(held, n - half)
    return prompts, no_scores


def _spread(items: list[str], k: int) -> list[str]:
    """``k`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / max(k - 1, 1))] for i in range(k)]
