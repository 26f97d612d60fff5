"""Reranking (DALL-E; Ramesh et al. 2021): draw N candidates per image, keep the one CLIP likes.

Candidate k of the image seeded ``s`` uses seed ``s + k * CANDIDATE_STRIDE``, so candidate 0 is
the image plain generation would make (N = 1 changes nothing) and every candidate can be
regenerated alone from its own seed, which is what a PNG records. :func:`rerank` serves any
seeded operation (text-to-image, img2img, inpainting, outpainting); :class:`RerankedText2Image`
is text-to-image behind the pipeline's own interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor
from atelier.diffusion.samplers import StepInfo
from atelier.eval.clip_metrics import clip_scores
from atelier.models.clip import CLIP
from atelier.pipelines.text2image import SamplingOptions, Text2Image

CANDIDATE_STRIDE = 1_000_003  # a prime far above any seed range a batch uses


def candidate_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the ``n`` candidates for an image seeded ``seed``."""
    if n < 1:
        raise ValueError(f"candidates must be at least 1, got {n}")
    return [seed + k * CANDIDATE_STRIDE for k in range(n)]


@dataclass(frozen=True)
class Choice:
    """The kept candidate: its image, its own seed, its CLIP score and every candidate's."""

    image: Image.Image
    seed: int
    score: float
    scores: tuple[float, ...]


def rerank(
    draw: Callable[[list[int], list[int]], list[Image.Image]],
    prompts: Sequence[str],
    seeds: Sequence[int],
    clip: CLIP | None,
    candidates: int,
) -> list[Choice]:
    """For every (prompt, seed), ``candidates`` images and the one ``clip`` scores highest.

    ``draw(items, seeds)`` makes one image per entry: for input ``items[j]`` (an index into
    ``prompts``) with seed ``seeds[j]``. All candidates are drawn in one call.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if clip is None and candidates > 1:
        raise ValueError("choosing among candidates needs a CLIP model")
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
    n = candidates
    items = [i for i in range(len(prompts)) for _ in range(n)]
    all_seeds = [c for s in seeds for c in candidate_seeds(s, n)]
    images = draw(items, all_seeds)
    if clip is None:
        return [Choice(im, s, float("nan"), ()) for im, s in zip(images, all_seeds)]
    x = torch.stack([array_to_tensor(np.asarray(im)) for im in images])
    scores = clip_scores(clip.eval(), x, [prompts[i] for i in items]).view(len(prompts), n)
    best = scores.argmax(1).tolist()
    return [
        Choice(images[i * n + k], all_seeds[i * n + k], float(scores[i, k]),
               tuple(scores[i].tolist()))
        for i, k in enumerate(best)
    ]  # fmt: skip


class RerankedText2Image:
    """A :class:`Text2Image` drawing ``candidates`` per image and keeping CLIP's favourite
    (with one candidate and no CLIP, plain generation behind the same interface)."""

    def __init__(self, pipe: Text2Image, clip: CLIP | None, candidates: int) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        if clip is None and candidates > 1:
            raise ValueError("choosing among candidates needs a CLIP model")
        self.pipe, self.candidates = pipe, candidates
        self.clip = clip.eval() if clip is not None else None

    def choose(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
    ) -> list[Choice]:
        def draw(items: list[int], seeds_: list[int]) -> list[Image.Image]:
            return self.pipe([prompts[i] for i in items], seeds=seeds_,
                             negative_prompt=negative_prompt, options=options,
                             callback=callback)  # fmt: skip

        return rerank(draw, prompts, seeds, self.clip, self.candidates)

    def __call__(self, prompts: Sequence[str], **kwargs) -> list[Image.Image]:
        return [c.image for c in self.choose(prompts, **kwargs)]
