"""The one dataset contract of atelier: item ``i`` is ``(image, caption)``.

``image`` is a float32 tensor of shape (3, R, R) with values in [-1, 1]; ``caption`` is a str.
Every dataset here (shapes, image folders, Hugging Face datasets) follows it, so trainers never
care where pictures come from.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@runtime_checkable
class CaptionedImages(Protocol):
    """A map-style dataset of captioned RGB images at a fixed square resolution."""

    resolution: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]: ...


def array_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {pixels.dtype} {pixels.shape}")
    # A copy: arrays from PIL are read-only, which torch.from_numpy warns about.
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 127.5 - 1.0


def tensor_to_array(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8, rounding to nearest."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
    scaled = ((image.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return scaled.to(torch.uint8).permute(1, 2, 0).numpy()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [-1, 1] -> RGB PIL image."""
    return Image.fromarray(tensor_to_array(image), mode="RGB")


def fit_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] resized to the tower's (B, 3, size, size), antialiased."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) RGB images, got {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
