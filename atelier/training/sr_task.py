"""Super-resolution diffusion (SR3, Saharia et al. 2021; Imagen's cascade, Saharia et al. 2022).

A pixel-space UNet denoises the high-resolution image x_0 (B, 3, S, S) given the low-resolution
image upsampled to S (bicubic), concatenated to its input. Noise conditioning augmentation
(Imagen section 2.5): during training the upsampled conditioning image is itself noised to a
random level s ~ U{0, ..., max_aug}, z_s = sqrt(abar_s) up + sqrt(1 - abar_s) eps', and the
network is told s. A cascade is then robust to the artefacts of the stage below; at sampling
time a fixed small s is used.

Like Imagen's super-resolution models, the network can train on random crops (``crop`` px) of
the high-resolution image and its conditioning, cut after degrading the whole image; a
convolutional UNet without self-attention then samples whole images of any size. A 32 px crop
of a 64 px image costs a quarter of the full step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.losses import Weighting, diffusion_loss
from atelier.diffusion.parameterization import q_sample
from atelier.diffusion.super_resolution import augment, degrade, upsample
from atelier.models.unet import UNet
from atelier.training.task import Logs


class SuperResolutionTask:
    """Train ``unet`` (in_channels = 6, noise-level conditioned) to upscale ``low`` px to S."""

    def __init__(
        self,
        unet: UNet,
        diffusion: DiffusionConfig,
        *,
        low: int,
        max_aug: int = 250,
        weighting: Weighting = "uniform",
        crop: int | None = None,
    ) -> None:
        if unet.config.in_channels != 6 or not unet.config.noise_level_conditioning:
            raise ValueError("a super-resolution UNet takes 6 input channels and a noise level")
        if crop is not None and any(unet.config.attention_levels):
            raise ValueError(
                "training on crops needs a UNet without self-attention (attention would see "
                "only the crop, then the whole image at sampling time); set attention_levels "
                "all false or crop=None"
            )
        self.unet, self.diffusion, self.low, self.crop = unet, diffusion, low, crop
        self.max_aug, self.weighting = max_aug, weighting
        self.abar = diffusion.alphas_cumprod()

    def modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        hi, _ = batch
        b, size = hi.shape[0], hi.shape[-1]
        up = upsample(degrade(hi, self.low), size)
        if self.crop is not None and self.crop < size:
            hi, up = self._crop(hi, up, size)
        level = torch.randint(0, self.max_aug + 1, (b,), device=hi.device)
        cond = augment(up, level, self.abar)
        t = torch.randint(0, self.diffusion.n_train, (b,), device=hi.device)
        noise = torch.randn_like(hi)
        x_t = q_sample(hi, self.abar.to(hi.device)[t].to(hi.dtype), noise)
        out = self.unet(torch.cat([x_t, cond], 1), t.to(hi.dtype), None, level.to(hi.dtype))
        per_image = diffusion_loss(
            out.float(), hi.float(), noise.float(), t, self.abar,
            prediction_type=self.diffusion.prediction_type, weighting=self.weighting,
            reduction="none",
        )  # fmt: skip
        return per_image.mean(), {"t": t.detach().cpu(), "loss": per_image.detach().cpu()}

    def _crop(
        self, hi: torch.Tensor, up: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random window of each image and its conditioning, at offsets on the
        low-resolution pixel grid (so every crop sees the upsampling kernel in the same phase)."""
        step = size // self.low
        positions = (size - self.crop) // step + 1
        ys = torch.randint(0, positions, (hi.shape[0],)) * step
        xs = torch.randint(0, positions, (hi.shape[0],)) * step
        c = self.crop
        hi = torch.stack([h[:, y : y + c, x : x + c] for h, y, x in zip(hi, ys, xs)])
        up = torch.stack([u[:, y : y + c, x : x + c] for u, y, x in zip(up, ys, xs)])
        return hi, up
