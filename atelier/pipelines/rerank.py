"""Reranking (DALL-E; Ramesh et al. 2021): draw N candidates per image, keep the one a scorer
(CLIP, in DALL-E) likes best.

Candidate k of the image seeded ``s`` uses seed ``s + k * CANDIDATE_STRIDE``, so candidate 0 is
the image plain generation would make (N = 1 changes nothing) and every candidate can be
regenerated alone from its own seed, which is what a PNG records. :func:`rerank` serves any
seeded operation (text-to-image, img2img, inpainting, outpainting); :class:`RerankedText2Image`
is text-to-image behind the pipeline's own interface. The scorer is any function of (images,
prompts) -> scores (``eval/clip_metrics.py`` makes one of a CLIP), so assembly never depends on
how images are judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

# A text-to-image model of any family: prompts, seeds= (and options=, ...) -> PIL images.
TextToImageCall = Callable[..., list[Image.Image]]
# Scores of (image, prompt) pairs, (N,); higher is better.
Scorer = Callable[[Sequence[Image.Image], Sequence[str]], torch.Tensor]
CANDIDATE_STRIDE = 1_000_003  # a prime far above any seed range a batch uses


def candidate_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the ``n`` candidates for an image seeded ``seed``."""
    if n < 1:
        raise ValueError(f"candidates must be at least 1, got {n}")
    return [seed + k * CANDIDATE_STRIDE for k in range(n)]


@dataclass(frozen=True)
class Choice:
    """The kept candidate: its image, its own seed, its score and every candidate's."""

    image: Image.Image
    seed: int
    score: float
    scores: tuple[float, ...]


def rerank(
    draw: Callable[[list[int], list[int]], list[Image.Image]],
    prompts: Sequence[str],
    seeds: Sequence[int],
    score: Scorer | None,
    candidates: int,
) -> list[Choice]:
    """For every (prompt, seed), ``candidates`` images and the one ``score`` rates highest.

    ``draw(items, seeds)`` makes one image per entry: for input ``items[j]`` (an index into
    ``prompts``) with seed ``seeds[j]``. All candidates are drawn in one call.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if score is None and candidates > 1:
        raise ValueError("choosing among candidates needs a scorer (a CLIP model)")
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
    n = candidates
    items = [i for i in range(len(prompts)) for _ in range(n)]
    all_seeds = [c for s in seeds for c in candidate_seeds(s, n)]
    images = draw(items, all_seeds)
    if score is None:
        return [Choice(im, s, float("nan"), ()) for im, s in zip(images, all_seeds)]
    scores = score(images, [prompts[i] for i in items]).view(len(prompts), n)
    best = scores.argmax(1).tolist()
    return [
        Choice(images[i * n + k], all_seeds[i * n + k], float(scores[i, k]),
               tuple(scores[i].tolist()))
        for i, k in enumerate(best)
    ]  # fmt: skip


class RerankedText2Image:
    """A text-to-image model (any family's) drawing ``candidates`` per image and keeping the
    scorer's favourite (with one candidate and no scorer, plain generation behind the same
    interface)."""

    def __init__(self, pipe: TextToImageCall, score: Scorer | None,
                 candidates: int) -> None:  # fmt: skip
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        if score is None and candidates > 1:
            raise ValueError("choosing among candidates needs a scorer (a CLIP model)")
        self.pipe, self.score, self.candidates = pipe, score, candidates

    def choose(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: Any = None,
        callback: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> list[Choice]:
        """``kwargs`` (such as ``size``) go to the model as they are."""

        def draw(items: list[int], seeds_: list[int]) -> list[Image.Image]:
            return self.pipe([prompts[i] for i in items], seeds=seeds_,
                             negative_prompt=negative_prompt, options=options,
                             callback=callback, **kwargs)  # fmt: skip

        return rerank(draw, prompts, seeds, self.score, self.candidates)

    def __call__(self, prompts: Sequence[str], **kwargs) -> list[Image.Image]:
        return [c.image for c in self.choose(prompts, **kwargs)]
