"""Distribution metrics on features: FID, KID, and improved precision and recall.

Notation: real features X (N, D) and generated features Y (M, D) from one feature extractor.

- FID (Heusel et al. 2017): ||mu_X - mu_Y||^2 + Tr(S_X + S_Y - 2 (S_X S_Y)^(1/2)), from the
  means and (unbiased) covariances; the trace of the matrix square root is the sum of the square
  roots of the eigenvalues of S_X S_Y. All in float64.
- KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / D + 1)^3, averaged over random subsets of equal size.
- Precision and recall (Kynkaenniemi et al. 2019): each real feature owns a ball reaching its
  k-th nearest real neighbour; precision is the share of generated features inside some real
  ball, recall the share of real features inside some generated ball.

The metric code is checked against torchmetrics' implementations on the same features.
Extractors (``FeatureExtractor``) are run in eval mode under ``no_grad``: a network left in
training mode changes its features with the batch (denoising-diffusion-pytorch issue #234).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]  # images (B, 3, H, W) -> (B, D)


@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,), covariance (D, D) and count of a feature set, float64."""

    mean: torch.Tensor
    cov: torch.Tensor
    n: int

    @classmethod
    def of(cls, features: torch.Tensor) -> FeatureStats:
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need (N >= 2, D) features, got {tuple(features.shape)}")
        f = features.double()
        return cls(f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1]), f.shape[0])


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two Gaussians fitted to features."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature widths differ: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    diff = (a.mean - b.mean).square().sum()
    # (S_a S_b)^(1/2) has the eigenvalues sqrt(eig(S_a S_b)), which are real and >= 0 up to
    # rounding; the real part of the complex square root discards that rounding.
    root_trace = torch.linalg.eigvals(a.cov @ b.cov).sqrt().real.sum()
    return float(diff + a.cov.trace() + b.cov.trace() - 2 * root_trace)


def _poly_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 of equal-size samples with k(x, y) = (x.y / D + 1)^3."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return within - 2 * k_xy.sum() / m**2


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID: mean and (population) std over ``subsets`` random subsets of ``subset_size``."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least two real and two generated features")
    scores = []
    for _ in range(subsets):
        x = real.double()[torch.randperm(len(real), generator=generator)[:size]]
        y = fake.double()[torch.randperm(len(fake), generator=generator)[:size]]
        scores.append(_poly_mmd2(x, y))
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(unbiased=False))


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each feature to its k-th nearest other feature in the same set (N,)."""
    d = torch.cdist(features, features)  # (N, N)
    return d.kthvalue(k + 1, dim=1).values  # the 1st "neighbour" is the point itself


def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall with k-NN balls (k = 3 as in the paper)."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} features per set")
    real, fake = real.double(), fake.double()
    r_real, r_fake = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d.T <= r_fake[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def knn_realism(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> torch.Tensor:
    """Per generated feature: the real k-NN radius of its nearest real neighbour over its
    distance to that neighbour, as a fidelity score (larger is more real-like; > 1 is inside
    the real manifold's ball). A simplification of Kynkaenniemi et al.'s realism score."""
    real, fake = real.double(), fake.double()
    radii = _kth_neighbour_radii(real, k)
    d = torch.cdist(fake, real)  # (M, N)
    return (radii[None, :] / d.clamp(min=1e-12)).max(1).values


@torch.no_grad()
def extract(extractor: FeatureExtractor, images: torch.Tensor, *, batch: int = 256) -> torch.Tensor:
    """Features of ``images`` (N, 3, H, W) in [-1, 1], with any module in eval mode."""
    if isinstance(extractor, nn.Module):
        extractor.eval()
    owner = getattr(extractor, "__self__", None)
    if isinstance(owner, nn.Module):
        owner.eval()
    return torch.cat(
        [extractor(images[i : i + batch]).double() for i in range(0, len(images), batch)]
    )


class Resized(nn.Module):
    """An extractor that takes images of any size: resized to the network's input first."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net, self.size = net, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from atelier.data.base import fit_images

        return self.net(fit_images(images, self.size))
