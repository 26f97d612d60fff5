"""Probes of what a text-to-image model reads from its prompt.

``position_probe``: for each seed, draw "a <colour> <shape> <position>" for every position
phrase with the same seed, and measure how often the object lands in the asked cell. A model
that ignores position words puts the object where the seed's noise leads it whatever the
prompt says: its rate stays near chance (1/9 for a cell) and its ``seed_determined`` share
(the detected cell is the same for every phrase of a seed) near 1.

``word_sensitivity``: no sampling at all. At a high noise level, where the layout is decided,
the network's prediction of x_0 (averaged over seeds) is the model's idea of E[x_0 | prompt];
change one word of the prompt (position, colour or shape) and measure how far that mean moves.
In the data, moving an object from the top left to the bottom right changes the mean image about
as much as recolouring it; a model whose position sensitivity is a small fraction of its colour
sensitivity has not learnt position words, whatever its samples happen to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.parameterization import predicted_x0
from atelier.pipelines.text2image import Text2Image
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


@dataclass(frozen=True)
class WordSensitivity:
    """Norms of the change of the seed-averaged x_0 prediction when one word changes."""

    position: float  # "... in the top left" -> "... in the bottom right"
    colour: float  # "a red ..." -> "a blue ..."
    shape: float  # "... circle ..." -> "... square ..."
    t: int

    @property
    def position_vs_colour(self) -> float:
        return self.position / self.colour if self.colour > 0 else float("nan")


@torch.no_grad()
def word_sensitivity(
    pipe: Text2Image, *, t: int | None = None, seeds: Sequence[int] = range(16)
) -> WordSensitivity:
    """How much ``pipe``'s network reads position, colour and shape words at training step ``t``
    (default: 95% of the way to pure noise). Each prompt is run on the same noises, seeded by
    ``seeds``; the result is in the diffusion model's latent units."""
    abar = pipe.diffusion.alphas_cumprod()
    t = round(0.95 * (len(abar) - 1)) if t is None else t
    if not 0 <= t < len(abar):
        raise ValueError(f"t must be a training step in [0, {len(abar) - 1}], got {t}")
    noise, _ = pipe.initial_noise(seeds)
    x_t = (1 - abar[t]).sqrt().to(noise.dtype) * noise  # x_0's share at this level is ignored
    steps = torch.full((len(seeds),), float(t), device=noise.device)

    def mean_x0(prompt: str) -> torch.Tensor:
        context = pipe.text_encoder.encode([prompt] * len(seeds))
        output = pipe.network(x_t, steps, context)
        return predicted_x0(pipe.diffusion.prediction_type, output, x_t, abar[t].item()).mean(0)

    base = mean_x0("a red circle in the top left")

    def moved(prompt: str) -> float:
        return float((mean_x0(prompt) - base).norm())

    return WordSensitivity(
        position=moved("a red circle in the bottom right"),
        colour=moved("a blue circle in the top left"),
        shape=moved("a red square in the top left"),
        t=t,
    )
