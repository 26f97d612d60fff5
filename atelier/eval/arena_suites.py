"""What the arena (``eval/arena.py``) judges with, per suite of prompts.

An :class:`ArenaSuite` is the prompts (each with ``id``, ``prompt``, ``category`` and ``split``),
a judge that reads a batch of images drawn for them (pass or fail, and why), the features
fidelity is measured in, and the real pictures those features are compared with:

- ``shapes-bench``: the shapes judge (the scene as asked); a CLIP's image features against fresh
  renders of the world.
- ``digits``: the digit judge (``mnist-classifier``) reads the asked digit; its own features
  against the held-out real digits.
- ``emoji``: a CLIP trained on emoji (``emoji-clip``) retrieves the prompt's name among 99 other
  names of the suite (R-precision's test at R = 1, chance 0.01, the same candidates for every
  entrant); a feature network trained on emoji (``emoji-features``) against the held-out pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from atelier.eval.fid import FeatureExtractor

ArenaSuiteName = Literal["shapes-bench", "digits", "emoji"]
ARENA_SUITES: tuple[str, ...] = ("shapes-bench", "digits", "emoji")

Verdict = tuple[bool, tuple[str, ...]]  # passed, and why not
Judge = Callable[[Sequence[Any], list[Image.Image]], list[Verdict]]


@dataclass(frozen=True)
class ArenaSuite:
    """Prompts, their judge, and fidelity's features and real pictures (see the module)."""

    name: str
    prompts: list[Any]
    judge: Judge
    extractor: FeatureExtractor
    real_images: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    reference: str  # what the real pictures are, for reports


def shapes_judge(prompts: Sequence[Any], images: list[Image.Image]) -> list[Verdict]:
    """The shapes judge on each image against its prompt's scene."""
    from atelier.shapes.judge import judge

    out = []
    for bp, image in zip(prompts, images):
        verdict = judge(np.asarray(image), bp.spec)
        out.append((verdict.passed, tuple(verdict.reasons)))
    return out


def shapes_suite(prompts: str | None, *, every: int, features: str, real: int) -> ArenaSuite:
    """shapes-bench (or a suite JSONL), every ``every``-th prompt; fidelity in ``features``' (a
    CLIP) image features against ``real`` fresh renders."""
    from atelier.data.shapes import ShapesDataset
    from atelier.eval.clip_metrics import CLIPImageFeatures
    from atelier.kinds.clip import load_clip
    from atelier.shapes.bench import load_suite

    suite = load_suite(prompts)[::every]
    clip = load_clip(features)
    data = ShapesDataset(real, resolution=64, seed=10_000, split="any")
    renders = torch.stack([data[i][0] for i in range(len(data))])
    return ArenaSuite("shapes-bench", suite, shapes_judge, CLIPImageFeatures(clip), renders,
                      f"{real} fresh renders in {features}'s image features")  # fmt: skip


def digits_suite(folder: Path, *, every: int, classifier: str) -> ArenaSuite:
    """Every digit in every phrasing of the digits suite, every ``every``-th; judged by
    ``classifier``; fidelity in its features against the held-out digits of ``folder``."""
    from atelier.data.real import half
    from atelier.eval.digits import digit_features, digit_prompts, read_digits_of
    from atelier.eval.real_sets import folder_tensors, tensors
    from atelier.kinds.digit_classifier import load_digit_classifier

    net = load_digit_classifier(classifier)

    def judge(prompts: Sequence[Any], images: list[Image.Image]) -> list[Verdict]:
        read = read_digits_of(tensors(images), classifier=net).tolist()
        return [(r == p.digit, () if r == p.digit else (f"read as {r}",))
                for p, r in zip(prompts, read)]  # fmt: skip

    held = folder_tensors(half(folder, "heldout"), 32)
    return ArenaSuite("digits", digit_prompts()[::every], judge, digit_features(net), held,
                      f"{len(held)} held-out real digits in {classifier}'s features")  # fmt: skip


def emoji_suite(folder: Path, *, every: int, clip_model: str, features: str) -> ArenaSuite:
    """The emoji suite's captions (held-out names, then seen ones), every ``every``-th; judged
    by ``clip_model``'s retrieval of each name among 99 others of the suite; fidelity in
    ``features``' features against the held-out pictures of ``folder``."""
    from atelier.data.real import half
    from atelier.eval.clip_metrics import pool_text_embeddings, retrieval_hits
    from atelier.eval.emoji import emoji_prompts
    from atelier.eval.fid import Resized
    from atelier.eval.real_sets import folder_tensors, tensors
    from atelier.kinds.clip import load_clip
    from atelier.kinds.features import load_feature_net

    prompts = emoji_prompts(folder)[::every]
    pool = [p.name for p in prompts]
    clip = load_clip(clip_model)
    pool_embeddings = pool_text_embeddings(clip, pool)  # once, not per batch

    def judge(batch: Sequence[Any], images: list[Image.Image]) -> list[Verdict]:
        hits = retrieval_hits(clip, tensors(images), [p.name for p in batch], pool=pool,
                              keys=[p.id for p in batch],
                              pool_embeddings=pool_embeddings)  # fmt: skip
        return [(hit, () if hit else (f"read as {best!r}",)) for hit, best in hits]

    net = load_feature_net(features)
    held = folder_tensors(half(folder, "heldout"), 64)
    return ArenaSuite("emoji", prompts, judge, Resized(net, net.config.image_size), held,
                      f"{len(held)} held-out emoji in {features}'s features")  # fmt: skip
