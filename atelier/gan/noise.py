"""A GAN image's noise z: drawn from its own seeded generator, and truncated.

Every image draws z from ``torch.Generator().manual_seed(seed)``, so an image depends on its
seed and prompt alone, never on the batch around it. Truncation scales z toward its mean 0
(the truncation trick; Brock et al., 2019 resample beyond a threshold, Karras et al., 2019
interpolate toward the mean latent; with z ~ N(0, I) the mean is 0 and the interpolation is a
scaling): psi = 1 keeps the training distribution, smaller psi gives more typical and less
varied images, psi = 0 gives every seed the image of z = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def draw_z(seeds: Sequence[int], dim: int) -> torch.Tensor:
    """z ~ N(0, I) (B, dim), row i from a generator seeded ``seeds[i]``."""
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.zeros(0, dim)


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """psi * z: z moved toward its mean 0 (psi in [0, 1])."""
    if not 0.0 <= psi <= 1.0:
        raise ValueError(f"truncation psi must be in [0, 1], got {psi!r}")
    return z * psi
