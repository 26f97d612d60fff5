"""A captioned image dataset turned into autoencoder latents once, for latent-diffusion training.

Encoding every batch again each step would cost the frozen encoder's forward pass on every
optimizer step; instead each image is encoded once (the posterior mode, times the latent scale)
and kept, with its caption, in a safetensors file keyed by the dataset and the VAE weights.
Item ``i`` is ``(z, caption)`` with z (c, h, w).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.data.base import CaptionedImages
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
        path = Path(cache_file) if cache_file is not None else None
        if path is not None and path.is_file():
            with safe_open(str(path), framework="pt") as f:
                self.latents = f.get_tensor("latents")
                meta = f.metadata()
            self.captions = json.loads(meta["captions"])
            if len(self.captions) != len(images) or float(meta["scale"]) != scale:
                raise ValueError(f"latent cache {path} does not match this dataset; delete it")
            return
        latents, captions = [], []
        vae = vae.eval()
        with torch.no_grad():
            for start in tqdm(
                range(0, len(images), batch_size), desc="encoding latents", disable=not progress
            ):
                items = [images[i] for i in range(start, min(start + batch_size, len(images)))]
                x = torch.stack([img for img, _ in items])  # (B, 3, H, W)
                latents.append(vae.encode(x).mode() * scale)
                captions += [text for _, text in items]
        self.latents, self.captions = torch.cat(latents), captions
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"captions": json.dumps(captions), "scale": str(scale)}
            write_atomic(path, save({"latents": self.latents.contiguous()}, metadata=meta))

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.latents[index], self.captions[index]
