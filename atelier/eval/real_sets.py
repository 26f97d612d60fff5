"""Measuring a model trained on a real set (``data/real.py``): drawing a suite's prompts, and
FID/KID/precision/recall against the held-out pictures beside the real-vs-real floor.

Notation: G the n generated pictures, H the held-out real ones, T the training ones. Every
distribution metric compares G with H; the floor compares n pictures of T drawn at random
(seeded) with H, the same measurement for a model that drew training pictures perfectly. With
small held-out sets (353 emoji) the floor is large, and only a model's distance above it means
anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from atelier.eval.fid import (
    FeatureExtractor,
    FeatureStats,
    extract,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)
from atelier.eval.report import DistributionMetrics, images_to_tensor


def draw(
    pipe: Callable[..., list[Image.Image]],
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    options: Any,
    batch: int = 16,
    desc: str = "drawing",
) -> tuple[list[Image.Image], float]:
    """``pipe(prompts, seeds=, options=)`` over ``batch`` prompts at a time: the images and
    seconds per image."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    images: list[Image.Image] = []
    began = time.perf_counter()
    for start in tqdm(range(0, len(prompts), batch), desc=desc):
        end = start + batch
        images += pipe(list(prompts[start:end]), seeds=list(seeds[start:end]), options=options)
    return images, (time.perf_counter() - began) / max(len(prompts), 1)


def random_subset(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` of the pictures ``x``, drawn without replacement by ``seed``."""
    if n > len(x):
        raise ValueError(f"the floor needs {n} training pictures, the set has {len(x)}")
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]


def real_distribution(name: str, extractor: FeatureExtractor, generated: torch.Tensor, *,
                      held: torch.Tensor, train: torch.Tensor,
                      seed: int = 0) -> DistributionMetrics:  # fmt: skip
    """FID, KID, precision and recall of ``generated`` against ``held`` (both (N, 3, H, W) in
    [-1, 1]), with FID and KID of as many random ``train`` pictures against ``held`` (all of
    them, when there are fewer)."""
    n = len(generated)
    if n < 4 or len(held) < 4:
        raise ValueError(f"distribution metrics need 4 pictures a side, got {n} and {len(held)}")
    real = extract(extractor, held)
    fake = extract(extractor, generated)
    floor = extract(extractor, random_subset(train, min(n, len(train)), seed))
    size = min(n, len(real), 1000)

    def kid(x: torch.Tensor) -> float:
        g = torch.Generator().manual_seed(seed)
        return kernel_inception_distance(real, x, subsets=50, subset_size=size, generator=g)[0]

    def fid(x: torch.Tensor) -> float:
        return frechet_distance(FeatureStats.of(real), FeatureStats.of(x))

    precision, recall = precision_recall(real, fake)
    return DistributionMetrics(name, n, fid(fake), kid(fake), precision, recall, fid(floor),
                               kid(floor))  # fmt: skip


def box_blur(images: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Each channel averaged over a k x k box (edges replicated)."""
    c = images.shape[1]
    padded = F.pad(images, (k // 2,) * 4, mode="replicate")
    return F.conv2d(padded, torch.full((c, 1, k, k), 1 / k**2, dtype=images.dtype), groups=c)


def distortions(sample: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """``sample`` (N, 3, H, W) in [-1, 1] distorted in ways a generated picture goes wrong; the
    noise is seeded, the same draw for both amplitudes."""
    g = torch.Generator().manual_seed(seed)
    noise = 2 * torch.rand(sample.shape, generator=g) - 1
    return {
        "blurred 3 x 3": box_blur(sample, 3),
        "blurred 5 x 5": box_blur(sample, 5),
        "+ uniform noise of at most 2/255": (sample + 2 * (2 / 255) * noise.abs()).clamp(-1, 1),
        "+ uniform noise 0.2": (sample + 0.2 * noise).clamp(-1, 1),
        "shifted 2 px": torch.roll(sample, 2, -1),
        "strokes thickened (3 x 3 maximum)": F.max_pool2d(sample, 3, 1, 1),
        "in grey": sample.mean(1, keepdim=True).expand_as(sample),
    }


# The distortions a feature network's card reports (bench/feature_spaces.py shows them all).
CARD_DISTORTIONS = ("blurred 5 x 5", "+ uniform noise 0.2", "in grey")


def feature_checks(extractor: FeatureExtractor, *, held: torch.Tensor, train: torch.Tensor,
                   seed: int = 0) -> dict[str, float]:  # fmt: skip
    """What FID in ``extractor``'s space says of known pictures, each set against ``held``: as
    many training pictures (the floor), and the same training pictures distorted
    (:data:`CARD_DISTORTIONS`). A good feature space puts the floor below all of them. The
    distortions are of the training sample, not of ``held`` itself: a set against its own
    distorted copy shares its sampling error and would look near at any size."""
    real = FeatureStats.of(extract(extractor, held))
    sample = random_subset(train, len(held), seed)
    distorted = distortions(sample, seed)
    sets = {"training pictures (the floor)": sample,
            **{f"the same {what}": distorted[what] for what in CARD_DISTORTIONS}}
    return {what: frechet_distance(real, FeatureStats.of(extract(extractor, x)))
            for what, x in sets.items()}  # fmt: skip


def tensors(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images -> (N, 3, H, W) in [-1, 1]."""
    return images_to_tensor(images)


def distribution_lines(metrics: Sequence[DistributionMetrics], against: str) -> list[str]:
    """One plain-text line per feature space, each figure beside its floor."""
    return [
        f"{m.extractor}: FID {m.fid:.4g} (floor {m.fid_floor:.4g}), KID {m.kid:.4g} (floor "
        f"{m.kid_floor:.4g}), precision {m.precision:.3f}, recall {m.recall:.3f}; {m.n} "
        f"generated against {against}"
        for m in metrics
    ]


def metric_cells(m: DistributionMetrics) -> list[str]:
    """One HTML table row of :data:`METRIC_HEADER`."""
    return [m.extractor, str(m.n), f"{m.fid:.4g}", f"{m.fid_floor:.4g}", f"{m.kid:.4g}",
            f"{m.kid_floor:.4g}", f"{m.precision:.3f}", f"{m.recall:.3f}"]  # fmt: skip


METRIC_HEADER = ["features", "n", "FID", "FID floor", "KID", "KID floor", "precision", "recall"]


def folder_tensors(folder: Path, resolution: int) -> torch.Tensor:
    """Every picture of a captioned image folder as (N, 3, R, R) in [-1, 1]."""
    from atelier.data.folder import ImageFolderDataset

    data = ImageFolderDataset(folder, resolution=resolution)
    return torch.stack([data[i][0] for i in range(len(data))])
