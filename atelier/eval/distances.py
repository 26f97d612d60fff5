"""Distances between two sets of samples: sliced Wasserstein-2 and the RBF-kernel MMD."""

from __future__ import annotations

import torch


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, *, projections: int = 256, seed: int = 0
) -> float:
    """Sliced Wasserstein-2 (Rabin et al. 2011) between equal-size sample sets (N, D)."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"need two (N, D) sample sets of one shape, got {a.shape} and {b.shape}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)  # (D, P)
    pa = (a.double() @ dirs).sort(0).values  # (N, P)
    pb = (b.double() @ dirs).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, *, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with a Gaussian kernel (Gretton et al. 2012); median-heuristic width."""
    a, b = a.double(), b.double()
    both = torch.cat([a, b])
    d2 = torch.cdist(both, both) ** 2
    if bandwidth is None:
        bandwidth = float(d2[d2 > 0].median().sqrt())
    k = torch.exp(-d2 / (2 * bandwidth**2))
    n, m = len(a), len(b)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    saa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    sbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(saa + sbb - 2 * kab.mean())
