"""FID, KID and precision/recall math against torchmetrics and scipy on the same features."""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from atelier.eval.fid import (
    FeatureStats,
    extract,
    frechet_distance,
    kernel_inception_distance,
    knn_realism,
    precision_recall,
)


class PassThrough(nn.Module):
    """torchmetrics takes any module as its feature network; this one hands features through."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def features(n, d, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5
    return (torch.randn(n, d, generator=g) @ mix + shift).float()


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fid_matches_torchmetrics_and_scipy(shift):
    real, fake = features(400, 16, seed=1), features(300, 16, shift, seed=2)
    ours = frechet_distance(FeatureStats.of(real), FeatureStats.of(fake))
    metric = FrechetInceptionDistance(feature=PassThrough(16))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs = float(metric.compute())
    assert ours == pytest.approx(theirs, rel=1e-4)
    a, b = real.double().numpy(), fake.double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    reference = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert ours == pytest.approx(reference, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift():
    real = features(300, 8)
    stats = FeatureStats.of(real)
    assert abs(frechet_distance(stats, stats)) < 1e-8
    near = frechet_distance(stats, FeatureStats.of(real + 0.1))
    far = frechet_distance(stats, FeatureStats.of(real + 1.0))
    assert near == pytest.approx(8 * 0.01, rel=1e-6) and far == pytest.approx(8.0, rel=1e-6)


def test_kid_matches_torchmetrics_with_full_subsets():
    # With subset_size equal to the set sizes every subset holds all features, so the random
    # permutations of either implementation cannot change the value.
    real, fake = features(200, 12, seed=3), features(200, 12, 0.2, seed=4)
    mean, std = kernel_inception_distance(real, fake, subsets=3, subset_size=200)
    metric = KernelInceptionDistance(feature=PassThrough(12), subsets=3, subset_size=200)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    theirs_mean, theirs_std = metric.compute()
    assert mean == pytest.approx(float(theirs_mean), rel=1e-4)
    assert std == pytest.approx(0.0, abs=1e-9) and float(theirs_std) == pytest.approx(0, abs=1e-6)


def test_kid_is_near_zero_for_one_distribution():
    a, b = features(500, 8, seed=5), features(500, 8, seed=5)[torch.randperm(500)]
    mean, _ = kernel_inception_distance(a, b, subsets=10, subset_size=100,
                                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=100)
    assert abs(mean) < 0.02 * shifted


def brute_force_precision_recall(real, fake, k):
    r, f = real.double().numpy(), fake.double().numpy()
    rr = np.sort(cdist(r, r), axis=1)[:, k]
    rf = np.sort(cdist(f, f), axis=1)[:, k]
    d = cdist(f, r)
    precision = np.mean([(d[i] <= rr).any() for i in range(len(f))])
    recall = np.mean([(d[:, j] <= rf).any() for j in range(len(r))])
    return precision, recall


def test_precision_recall_match_a_brute_force_reference():
    real, fake = features(120, 5, seed=6), features(90, 5, 0.8, seed=7)
    p, r = precision_recall(real, fake, k=3)
    ref_p, ref_r = brute_force_precision_recall(real, fake, 3)
    assert p == pytest.approx(ref_p) and r == pytest.approx(ref_r)
    # A generator that only covers one corner: high precision, low recall.
    corner = real[torch.cdist(real[:1], real)[0].argsort()[:24]]  # real[0]'s 24 neighbours
    p, r = precision_recall(real, corner, k=3)
    assert p > 0.9 and r < 0.5
    scores = knn_realism(real, torch.cat([real[:5], real[:5] + 50]))
    assert (scores[:5] > 1).all() and (scores[5:] < 0.2).all()


def test_extractor_runs_in_eval_mode():
    # A batch-norm network in training mode would normalise by the batch; extract must not.
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4)).train()
    images = torch.randn(10, 3, 2, 2)
    one_batch = extract(net, images, batch=10)
    assert not net.training
    torch.testing.assert_close(extract(net, images, batch=3), one_batch)
