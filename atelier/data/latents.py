"""A captioned image dataset turned into autoencoder latents once, for latent-diffusion training.

Encoding every batch again each step would cost the frozen encoder's forward pass on every
optimizer step; instead each image is encoded once (the posterior mode, times the latent scale)
and kept, with its caption, in a safetensors file keyed by the dataset and the VAE weights.
Item ``i`` is ``(z, caption)`` with z (c, h, w).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from atelier.data.base import CaptionedImages
from atelier.data.encoded import encode_once
from atelier.digest import state_digest


def module_digest(module: nn.Module) -> str:
    """A short digest of a module's weights, naming the latent space they define."""
    return state_digest(("", module))


class LatentDataset:
    """``(z, caption)`` pairs: ``vae.encode(image).mode() * scale`` for every item of ``images``."""

    def __init__(
        self,
        images: CaptionedImages,
        vae: nn.Module,
        *,
        scale: float,
        cache_file: str | Path | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> None:
        self.resolution = images.resolution
        vae = vae.eval()
        self.latents, self.captions = encode_once(
            images, lambda x: vae.encode(x).mode() * scale, name="latents",
            settings={"scale": str(scale)}, cache_file=cache_file, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.latents[index], self.captions[index]
