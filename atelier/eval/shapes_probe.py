"""Fresh renders of the shapes world that probe image-text models.

- the zero-shot probe: 18 classes (6 colours x 3 shapes), labelled "a <colour> <shape>";
- the binding probe: fresh scenes, each with its caption and one hard negative (the caption with
  one fact changed, ``shapes/negatives.py``), as in the ARO benchmark;
- the swapped-colour text probe: the text tower alone, on "a red circle and a blue square"
  against "a blue circle and a red square" and every such pair.
The image probes render from seeds the training set never uses (training scenes come from seed
0's stream).
"""

from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import torch
import torch.nn.functional as F

from atelier.data.base import array_to_tensor
from atelier.eval.clip_metrics import hard_negative_accuracy
from atelier.models.clip import CLIP
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


BINDING_SEED = 20_000


def binding_accuracy(
    clip: CLIP, *, scenes: int = 2000, size: int = 64, seed: int = BINDING_SEED
) -> dict[str, float]:
    """How often ``clip`` scores a fresh scene's caption above a hard negative of it, overall
    and per kind of change (any split: held-out pairs included)."""
    from atelier.data.shapes import ShapesDataset

    data = ShapesDataset(scenes, resolution=size, seed=seed, split="any")
    x = torch.stack([data[i][0] for i in range(len(data))])
    captions = [data[i][1] for i in range(len(data))]
    negatives = [data.hard_negatives(i, 1)[0] for i in range(len(data))]
    return hard_negative_accuracy(
        clip, x, captions, [t for t, _ in negatives], [k for _, k in negatives]
    )


def swapped_colour_captions() -> list[tuple[str, str]]:
    """Every "a C1 S1 and a C2 S2" (two colours, two shapes) with its colours swapped: 90 pairs
    that hold the same words, so a bag of words cannot tell them apart."""
    return [
        (f"a {c1} {s1} and a {c2} {s2}", f"a {c2} {s1} and a {c1} {s2}")
        for c1, c2 in combinations(COLORS, 2)
        for s1, s2 in permutations(SHAPES, 2)
    ]


@torch.no_grad()
def swapped_colour_cosine(clip: CLIP) -> float:
    """The mean cosine, in CLIP's joint space, of a two-object caption and the same caption with
    its colours swapped, over :func:`swapped_colour_captions`: near 1 where the text tower reads
    a bag of words; the lower, the more its embedding knows which colour goes with which shape."""
    pairs = swapped_colour_captions()
    first = clip.encode_text([a for a, _ in pairs])  # (N, E), unit vectors
    second = clip.encode_text([b for _, b in pairs])  # (N, E)
    return float(F.cosine_similarity(first, second, dim=-1).mean())
