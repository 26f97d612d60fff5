"""The space a latent diffusion model works in: the autoencoder's latents, shifted and scaled.

Stable Diffusion multiplies latents by one scale factor, 1 / std of the latents (Rombach et al.
2022, section 4.3.2). Some models normalise each channel instead (Playground v2.5, and diffusers'
``latents_mean`` / ``latents_std``); we follow diffusers' convention exactly:

    z_diffusion = (z - mean) * scale / std        z = z_diffusion * std / scale + mean

per channel when ``mean`` and ``std`` are given, and ``z * scale`` without them. Per-channel
normalisation matters when channels differ in spread: with one global scale, a channel of small
spread is drowned by noise early and its absolute errors, which a uniform loss treats like any
other channel's, are large relative to its signal (on shapes-vae latents the four channel stds
are 0.28, 0.52, 0.49 and 1.41 after the global scale).

Vectors (B, C) are normalised the same way, a "channel" being one dimension: unCLIP's prior
diffuses CLIP image embeddings normalised per dimension (as Karlo does), so its targets have the
unit variance its noise schedule assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentSpace:
    """``scale`` always; ``mean`` and ``std`` (one value per latent channel) when per-channel."""

    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"latent scale must be a positive number, got {self.scale!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give latent mean and std together, or neither")
        if self.std is not None:
            if len(self.std) != len(self.mean):
                raise ValueError("latent mean and std need one value per channel each")
            if not all(math.isfinite(s) and s > 0 for s in self.std):
                raise ValueError(f"latent stds must be positive numbers, got {self.std!r}")

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if z.ndim not in (2, 4) or z.shape[1] != len(self.mean):
            c = len(self.mean)
            raise ValueError(
                f"latents must be (B, {c}, h, w) or vectors (B, {c}) for this latent space, "
                f"got {tuple(z.shape)}"
            )
        shape = (1, -1, *([1] * (z.ndim - 2)))  # (1, C, 1, 1) or (1, C)
        mean = torch.tensor(self.mean, dtype=z.dtype, device=z.device).view(shape)
        std = torch.tensor(self.std, dtype=z.dtype, device=z.device).view(shape)
        return mean, std

    def to_diffusion(self, z: torch.Tensor) -> torch.Tensor:
        """Autoencoder latents -> the diffusion model's space."""
        if self.mean is None:
            return z * self.scale
        mean, std = self._stats(z)
        return (z - mean) * self.scale / std

    def from_diffusion(self, z: torch.Tensor) -> torch.Tensor:
        """The diffusion model's space -> autoencoder latents (what the decoder takes)."""
        if self.mean is None:
            return z / self.scale
        mean, std = self._stats(z)
        return z * std / self.scale + mean

    def matches(self, other: LatentSpace, *, tolerance: float = 0.01) -> bool:
        """The same normalisation up to ``tolerance`` (in units of each channel's std): the
        statistics of one dataset's latents, measured on two machines, differ in their last
        digits, because the autoencoder's convolutions round differently on different CPUs."""
        if self.scale != other.scale or (self.mean is None) != (other.mean is None):
            return False
        if self.mean is None:
            return True
        if len(self.mean) != len(other.mean):
            return False
        return all(
            abs(m - n) <= tolerance * s and abs(s - t) <= tolerance * s
            for m, n, s, t in zip(self.mean, other.mean, self.std, other.std, strict=True)
        )

    @classmethod
    def measure(cls, latents: torch.Tensor, *, scale: float = 1.0) -> LatentSpace:
        """Per-channel mean and std of ``latents`` (N, C, h, w) or vectors (N, C), so that the
        result has zero mean and standard deviation ``scale`` in every channel. Accumulates in
        float64."""
        if latents.ndim not in (2, 4) or latents[:, 0].numel() < 2:
            raise ValueError(
                f"need a (N, C, h, w) batch of latents or (N, C) of vectors, got "
                f"{tuple(latents.shape)}"
            )
        z = latents.double().transpose(0, 1).reshape(latents.shape[1], -1)
        mean, std = z.mean(1), z.std(1)
        if not bool((std > 0).all()):
            raise ValueError("a latent channel has no spread; is the autoencoder trained?")
        return cls(scale=scale, mean=tuple(mean.tolist()), std=tuple(std.tolist()))
