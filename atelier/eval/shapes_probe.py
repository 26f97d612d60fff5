"""Fresh single-object renders of the shapes world: the zero-shot probe for image-text models.

18 classes (6 colours x 3 shapes), labelled "a <colour> <shape>", rendered from seeds the
training set never uses (training scenes come from seed 0's stream; these from ``seed``).
"""

from __future__ import annotations

import numpy as np
import torch

from atelier.data.base import array_to_tensor
from atelier.shapes.parse import parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import realize
from atelier.shapes.world import COLORS, SHAPES

PROBE_SEED = 90_210


def single_object_labels() -> list[str]:
    """The 18 class prompts, colour-major."""
    return [f"a {color} {shape}" for color in COLORS for shape in SHAPES]


def single_object_probe(
    per_class: int = 10, *, size: int = 64, seed: int = PROBE_SEED
) -> tuple[torch.Tensor, list[str], list[int]]:
    """(images (N, 3, S, S) in [-1, 1], the 18 labels, true label index per image)."""
    labels = single_object_labels()
    rng = np.random.default_rng(seed)
    images, truth = [], []
    for k, label in enumerate(labels):
        spec = parse_prompt(label)
        for _ in range(per_class):
            images.append(array_to_tensor(render(realize(spec, rng), size)))
            truth.append(k)
    return torch.stack(images), labels, truth
