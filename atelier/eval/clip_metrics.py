"""What a trained CLIP measures: zero-shot classification, retrieval recall and CLIP score.

CLIP score follows torchmetrics' definition (Hessel et al. 2021 without their 2.5 weight):
100 * max(cos(E_image, E_caption), 0) per pair, averaged over pairs.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor, fit_images
from atelier.models.clip import CLIP


def _batched(fn, items, batch: int) -> torch.Tensor:
    return torch.cat([fn(items[i : i + batch]) for i in range(0, len(items), batch)])


def _image_embeddings(clip: CLIP, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return _batched(lambda x: clip.encode_image(fit_images(x, clip.image_size)), images, batch)


@torch.no_grad()
def zero_shot_probabilities(
    clip: CLIP, images: torch.Tensor, labels: Sequence[str], *, batch: int = 256
) -> torch.Tensor:
    """P(label | image) (N, K): softmax over the labels' scaled cosine similarities."""
    if not labels:
        raise ValueError("zero-shot classification needs at least one label")
    text = clip.encode_text(list(labels))  # (K, E)
    image = _image_embeddings(clip, images, batch)  # (N, E)
    return (clip.temperature_scale() * image @ text.T).softmax(-1)


def zero_shot_accuracy(
    clip: CLIP, images: torch.Tensor, labels: Sequence[str], truth: Sequence[int]
) -> float:
    """Share of ``images`` whose most probable label is ``labels[truth[i]]``."""
    predicted = zero_shot_probabilities(clip, images, labels).argmax(-1)
    return float((predicted == torch.as_tensor(list(truth))).float().mean())


@torch.no_grad()
def retrieval_recall(
    clip: CLIP, images: torch.Tensor, captions: Sequence[str], *, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Recall@k both ways for N aligned (image, caption) pairs.

    A retrieved item counts as correct when its caption equals the query's own (captions repeat
    in the shapes world; an identical caption is an equally right answer).
    """
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    image = _image_embeddings(clip, images)  # (N, E)
    text = _batched(lambda c: clip.encode_text(list(c)), list(captions), 256)  # (N, E)
    sim = image @ text.T  # (N, N)
    ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
    keys = torch.tensor([ids[c] for c in captions])
    same = keys[:, None] == keys[None, :]  # (N, N) True where captions match
    out = {}
    for k in ks:
        k_ = min(k, len(captions))
        top_text = sim.topk(k_, dim=1).indices  # (N, k) captions per image
        top_image = sim.T.topk(k_, dim=1).indices  # (N, k) images per caption
        out[f"image_to_text_R@{k}"] = float(same.gather(1, top_text).any(1).float().mean())
        out[f"text_to_image_R@{k}"] = float(same.gather(1, top_image).any(1).float().mean())
    return out


@dataclass(frozen=True)
class RPrecision:
    """R-precision with R = 1: the share of ``images`` whose own text ranks first among
    ``candidates`` texts; ``chance`` = 1 / candidates."""

    value: float
    chance: float
    candidates: int
    images: int


@torch.no_grad()
def r_precision(clip: CLIP, images: torch.Tensor, texts: Sequence[str], *,
                candidates: int = 100, seed: int = 0) -> RPrecision:  # fmt: skip
    """R-precision (Xu et al. 2018, AttnGAN's text-image retrieval score) with R = 1: each image
    is scored against its own text ``texts[i]`` and ``candidates - 1`` other distinct texts of
    ``texts`` drawn at random (all of them when there are fewer); a hit when its own scores
    strictly highest. Chance is 1 / candidates."""
    if len(images) != len(texts):
        raise ValueError(f"got {len(images)} images but {len(texts)} texts")
    pool = list(dict.fromkeys(texts))
    k = min(candidates, len(pool))
    if k < 2:
        raise ValueError("R-precision needs at least two distinct texts")
    index = {text: j for j, text in enumerate(pool)}
    text = _batched(lambda c: clip.encode_text(list(c)), pool, 256)  # (P, E)
    sim = _image_embeddings(clip, images) @ text.T  # (N, P)
    rng = np.random.default_rng(seed)
    hits = 0
    for i, own_text in enumerate(texts):
        own = index[own_text]
        others = np.delete(np.arange(len(pool)), own)
        drawn = torch.as_tensor(rng.choice(others, size=k - 1, replace=False))
        hits += bool(sim[i, own] > sim[i, drawn].max())
    return RPrecision(hits / len(texts), 1 / k, k, len(texts))


@torch.no_grad()
def pool_text_embeddings(clip: CLIP, pool: Sequence[str]) -> torch.Tensor:
    """(P, E) the text tower's embeddings of ``pool``'s distinct texts, in order."""
    return _batched(lambda c: clip.encode_text(list(c)), list(dict.fromkeys(pool)), 256)


@torch.no_grad()
def retrieval_hits(clip: CLIP, images: torch.Tensor, texts: Sequence[str], *,
                   pool: Sequence[str], keys: Sequence[str], candidates: int = 100,
                   pool_embeddings: torch.Tensor | None = None,
                   ) -> list[tuple[bool, str]]:  # fmt: skip
    """Per image, R-precision's test at R = 1: whether its own text ``texts[i]`` scores strictly
    above ``candidates - 1`` other texts of ``pool``, and the best-scoring of those. The others
    are drawn by a generator seeded with ``keys[i]``, so a job meets the same candidates whoever
    drew its image (an arena's pairs are judged alike). ``pool_embeddings``, the text tower's
    embeddings of ``pool`` (deduplicated, in order), spares a caller that judges batch after
    batch of one pool encoding it each time."""
    if not len(images) == len(texts) == len(keys):
        raise ValueError(f"got {len(images)} images, {len(texts)} texts and {len(keys)} keys")
    pool = list(dict.fromkeys(pool))
    missing = set(texts) - set(pool)
    if missing:
        raise ValueError(f"texts not in the pool: {sorted(missing)[:3]}")
    k = min(candidates, len(pool))
    if k < 2:
        raise ValueError("retrieval needs at least two distinct texts")
    index = {text: j for j, text in enumerate(pool)}
    if pool_embeddings is None:
        pool_embeddings = pool_text_embeddings(clip, pool)
    sim = _image_embeddings(clip, images) @ pool_embeddings.T  # (N, P)
    out = []
    for i, (own_text, key) in enumerate(zip(texts, keys)):
        own = index[own_text]
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        drawn = rng.choice(np.delete(np.arange(len(pool)), own), size=k - 1, replace=False)
        best = int(drawn[int(sim[i, torch.as_tensor(drawn)].argmax())])
        out.append((bool(sim[i, own] > sim[i, best]), pool[best]))
    return out


@torch.no_grad()
def hard_negative_accuracy(
    clip: CLIP,
    images: torch.Tensor,
    captions: Sequence[str],
    negatives: Sequence[str],
    kinds: Sequence[str],
) -> dict[str, float]:
    """Share of images whose true caption scores above a false one differing by one fact
    (ARO-style binding test), overall and per kind of change (ties count as failures)."""
    if not len(images) == len(captions) == len(negatives) == len(kinds):
        raise ValueError("give one caption, one negative and one kind per image")
    image = _image_embeddings(clip, images)  # (N, E)
    true = _batched(lambda c: clip.encode_text(list(c)), list(captions), 256)
    false = _batched(lambda c: clip.encode_text(list(c)), list(negatives), 256)
    won = ((image * true).sum(-1) > (image * false).sum(-1)).float()
    out = {"all": float(won.mean())}
    for kind in sorted(set(kinds)):
        mask = torch.tensor([k == kind for k in kinds])
        out[kind] = float(won[mask].mean())
    return out


@torch.no_grad()
def clip_scores(clip: CLIP, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
    """100 * max(cos, 0) of each (image, caption) pair (N,)."""
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    image = _image_embeddings(clip, images)
    text = _batched(lambda c: clip.encode_text(list(c)), list(captions), 256)
    return 100 * (image * text).sum(-1).clamp(min=0)


def clip_scorer(clip: CLIP) -> Callable[[Sequence[Image.Image], Sequence[str]], torch.Tensor]:
    """A reranker's scorer: the CLIP score of each (PIL image, prompt) pair."""
    clip = clip.eval()

    def score(images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        x = torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])
        return clip_scores(clip, x, prompts)

    return score


class CLIPImageFeatures(torch.nn.Module):
    """The image tower's features (before projection) of images of any size: FID's extractor."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.image_features(fit_images(images, self.clip.image_size))
