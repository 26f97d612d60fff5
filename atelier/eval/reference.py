"""Real-image reference features, cached by extractor and dataset, and the real-vs-real floor.

An FID means little alone: two samples of the real distribution already differ by an amount
that depends on the sample size and the feature network. Every FID/KID atelier reports stands
beside that floor, measured on two disjoint real sets of the same size as the generated set.

The cache file is named by a digest of the extractor's weights and the dataset's key (for the
shapes world: spec version, split, seed, count and resolution), so any change to either makes
a new file instead of reusing stale features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from atelier.atomic import write_atomic
from atelier.data.shapes import ShapesDataset
from atelier.digest import state_digest
from atelier.eval.fid import FeatureStats, extract, frechet_distance, kernel_inception_distance
from atelier.paths import home

REFERENCE_SEED = 20_000  # fresh scenes, disjoint from training (seed 0) and eval (10_000)


def reference_dataset(n: int, resolution: int = 64) -> ShapesDataset:
    """``n`` fresh shapes scenes (any split) for reference statistics."""
    return ShapesDataset(n, resolution=resolution, seed=REFERENCE_SEED, split="any")


def cached_features(
    extractor: nn.Module, data: ShapesDataset, *, cache: Path | None = None
) -> torch.Tensor:
    """Features of every image of ``data``, computed once per (extractor weights, dataset)."""
    folder = cache if cache is not None else home() / "cache" / "features"
    key = f"{state_digest(('', extractor))}-{data.cache_key}"
    path = folder / f"{key}.safetensors"
    if path.is_file():
        return load_file(str(path))["features"]
    images = torch.stack([data[i][0] for i in range(len(data))])
    features = extract(extractor, images)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save({"features": features.contiguous()}))
    return features


@dataclass(frozen=True)
class Floor:
    """FID and KID between two disjoint real sets of ``n`` images each."""

    n: int
    fid: float
    kid: float


def real_floor(features: torch.Tensor, n: int, *, seed: int = 0) -> Floor:
    """The floor for generated sets of ``n`` images, from ``2 n`` real features."""
    if len(features) < 2 * n:
        raise ValueError(f"the floor for n={n} needs {2 * n} real features, got {len(features)}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(features), generator=g)
    a, b = features[order[:n]], features[order[n : 2 * n]]
    fid = frechet_distance(FeatureStats.of(a), FeatureStats.of(b))
    kid, _ = kernel_inception_distance(a, b, subsets=50, subset_size=min(n, 1000), generator=g)
    return Floor(n, fid, kid)
