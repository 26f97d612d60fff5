"""The space a noise-aware network reads: one diffusion model's noised latents x_t.

A noise-aware classifier or noised CLIP (ADM; GLIDE) never sees an image: it reads the VP latent
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps of one diffusion model, at that model's timestep t.
Its folder names the space: the model it was trained beside, the latent shape (C, h, w), the
schedule, and a digest of the autoencoder's weights and the latent normalisation, so guidance
refuses a model whose latents mean something else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from torch import nn

from atelier.diffusion.config import DiffusionConfig
from atelier.digest import state_digest
from atelier.models.latent_space import LatentSpace


@dataclass(frozen=True)
class NoisedSpace:
    """Which diffusion model's x_t a network reads: its name, latent shape, schedule, digest."""

    model: str
    latent_shape: tuple[int, int, int]
    diffusion: DiffusionConfig
    digest: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_shape", tuple(self.latent_shape))
        if len(self.latent_shape) != 3 or min(self.latent_shape) < 1:
            raise ValueError(f"latent_shape must be (C, h, w), got {self.latent_shape!r}")


def space_digest(
    autoencoder: nn.Module | None,
    latent_space: LatentSpace,
    diffusion: DiffusionConfig,
    latent_shape: tuple[int, ...],
) -> str:
    """A digest naming a diffusion model's noised space: the autoencoder's weights (none in pixel
    space), the latent normalisation, the schedule and the latent shape."""
    salt = json.dumps([asdict(latent_space), asdict(diffusion), list(latent_shape)],
                      sort_keys=True)  # fmt: skip
    named = [("autoencoder", autoencoder)] if autoencoder is not None else []
    return state_digest(*named, salt=salt)
