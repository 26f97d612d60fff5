"""Probes of what a text-to-image model reads from its prompt.

``position_probe``: for each seed, draw "a <colour> <shape> <position>" for every position
phrase with the same seed, and measure how often the object lands in the asked cell. A model
that ignores position words puts the object where the seed's noise leads it whatever the
prompt says: its rate stays near chance (1/9 for a cell) and its ``seed_determined`` share
(the detected cell is the same for every phrase of a seed) near 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from atelier.pipelines.text2image import SamplingOptions, Text2Image
from atelier.shapes.judge import detect
from atelier.shapes.parse import parse_prompt

PHRASES = (
    "in the top left", "in the top", "in the top right", "on the left", "in the center",
    "on the right", "in the bottom left", "in the bottom", "in the bottom right",
)  # fmt: skip


@dataclass(frozen=True)
class PositionProbe:
    in_asked_cell: float  # share of images whose object is in the asked cell
    seed_determined: float  # share of seeds whose detected cells are all equal
    found: float  # share of images with the object found at all
    images: int


def position_probe(
    pipe: Text2Image,
    *,
    objects: Sequence[str] = ("red circle", "blue square", "green triangle"),
    seeds: Sequence[int] = range(4),
    options: SamplingOptions = SamplingOptions(),
) -> PositionProbe:
    hits, found, determined, total = 0, 0, 0, 0
    for obj in objects:
        prompts = [f"a {obj} {p}" for p in PHRASES]
        for seed in seeds:
            images = pipe(prompts, seeds=[seed] * len(prompts), options=options)
            cells = []
            for prompt, image in zip(prompts, images):
                want = parse_prompt(prompt).objects[0]
                got = [o for o in detect(np.asarray(image))
                       if (o.color, o.shape) == (want.color, want.shape)]  # fmt: skip
                total += 1
                if got:
                    found += 1
                    hits += got[0].cell == want.cell
                    cells.append(got[0].cell)
            determined += len(cells) == len(prompts) and len(set(cells)) == 1
    n_seeds = len(objects) * len(seeds)
    return PositionProbe(hits / total, determined / n_seeds, found / total, total)
