"""An analytic test bed: Gaussian-mixture data, whose optimal denoiser is known in closed form.

Data: x_0 ~ sum_k pi_k N(mu_k, s_k^2 I) in D dimensions. In the VE view x = x_0 + sigma eps the
noisy marginal is sum_k pi_k N(mu_k, (s_k^2 + sigma^2) I), and the optimal (MMSE) denoiser is

    D*(x, sigma) = E[x_0 | x] = sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)),

with responsibilities r_k(x) proportional to pi_k N(x; mu_k, (s_k^2 + sigma^2) I). A sampler fed
D* should reproduce the mixture exactly as its discretisation error vanishes, so the distance of
its samples to fresh true samples measures the sampler alone. Each component carries a class
label, which gives a conditional denoiser for guidance experiments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """Isotropic Gaussian mixture: means (K, D), stds (K,), weights (K,), labels (K,)."""

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor
    labels: torch.Tensor

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def subset(self, label: int) -> GaussianMixture:
        """The mixture of one class's components (the class-conditional data distribution)."""
        keep = self.labels == label
        if not keep.any():
            raise ValueError(f"no component has label {label}")
        w = self.weights[keep]
        return GaussianMixture(self.means[keep], self.stds[keep], w / w.sum(), self.labels[keep])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n true samples (n, D), float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * eps

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The exact posterior mean E[x_0 | x] at noise level sigma (scalar or per row)."""
        x64 = x.double()
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        var = self.stds[None, :, None] ** 2 + sigma**2  # (B|1, K, 1)
        diff = x64[:, None, :] - self.means[None]  # (B, K, D)
        log_p = (
            self.weights.log()[None]
            - 0.5 * (diff**2).sum(-1) / var[..., 0]
            - 0.5 * self.dim * (2 * math.pi * var[..., 0]).log()
        )  # (B, K)
        r = torch.softmax(log_p, dim=1)[..., None]  # (B, K, 1)
        shrink = self.stds[None, :, None] ** 2 / var  # (B|1, K, 1)
        x0 = (r * (self.means[None] + shrink * diff)).sum(1)  # (B, D)
        return x0.to(x.dtype)


def ring_mixture(
    dim: int = 2, k: int = 8, *, radius: float = 1.0, std: float = 0.08, seed: int = 0
) -> GaussianMixture:
    """K equal components on a ring (2-D) or at random points of a sphere (D > 2), 2 classes."""
    if dim == 2:
        angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
        means = radius * torch.stack([angles.cos(), angles.sin()], 1)
    else:
        g = torch.Generator().manual_seed(seed)
        means = torch.randn(k, dim, generator=g, dtype=torch.float64)
        means = radius * means / means.norm(dim=1, keepdim=True)
    return GaussianMixture(
        means=means,
        stds=torch.full((k,), std, dtype=torch.float64),
        weights=torch.full((k,), 1.0 / k, dtype=torch.float64),
        labels=torch.arange(k) % 2,
    )
