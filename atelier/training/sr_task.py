"""Super-resolution diffusion (SR3, Saharia et al. 2021; Imagen's cascade, Saharia et al. 2022).

A pixel-space UNet denoises the high-resolution image x_0 (B, 3, S, S) given the low-resolution
image upsampled to S (bicubic), concatenated to its input. Noise conditioning augmentation
(Imagen section 2.5): during training the upsampled conditioning image is itself noised to a
random level s ~ U{0, ..., max_aug}, z_s = sqrt(abar_s) up + sqrt(1 - abar_s) eps', and the
network is told s. A cascade is then robust to the artefacts of the stage below; at sampling
time a fixed small s is used.
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
    ) -> None:
        if unet.config.in_channels != 6 or not unet.config.noise_level_conditioning:
            raise ValueError("a super-resolution UNet takes 6 input channels and a noise level")
        self.unet, self.diffusion, self.low = unet, diffusion, low
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
