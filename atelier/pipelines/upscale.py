"""Upscaling with a super-resolution diffusion model (its folder: ``kinds/upscaler.py``).

``Upscaler(images, seeds=...)`` takes ``low`` px images and returns ``high`` px ones: the input is
upsampled (bicubic), noised to the fixed inference augmentation level, and a sampler denoises
the high-resolution image with it as conditioning. No text and no guidance: the low-resolution
image says what to draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor, tensor_to_pil
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import StepInfo, get_sampler
from atelier.diffusion.super_resolution import augment, consistent_with, upsample
from atelier.models.unet import UNet
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.pipelines.runtime import in_precision, weights_cast_once


class SuperResolutionSettings(Protocol):
    """What the pipeline reads of an upscaler's config (``kinds/upscaler.py``)."""

    low: int
    high: int
    diffusion: DiffusionConfig
    inference_aug: int
    consistency: bool
    defaults: SamplingOptions


class Upscaler:
    """``low`` px images -> ``high`` px images, each from its own seeded noise."""

    def __init__(self, unet: UNet, config: SuperResolutionSettings, *, rows: int = 8) -> None:
        self.unet, self.config, self.rows = unet.eval(), config, rows
        self._abar = config.diffusion.alphas_cumprod()

    @torch.no_grad()
    def __call__(
        self,
        images: Sequence[Image.Image],
        *,
        seeds: Sequence[int],
        options: SamplingOptions | None = None,
        callback: Callable[[StepInfo], None] | None = None,
    ) -> list[Image.Image]:
        c = self.config
        options = options or c.defaults
        if len(images) != len(seeds):
            raise ValueError(f"got {len(images)} images but {len(seeds)} seeds; pass one each")
        for im in images:
            if im.size != (c.low, c.low):
                raise ValueError(
                    f"this upscaler takes {c.low}x{c.low} images, got {im.width}x{im.height}; "
                    f"resize to {c.low} px first (it makes {c.high} px)"
                )
        device = next(self.unet.parameters()).device
        lo = torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])
        up = upsample(lo.to(device), c.high)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        level = torch.full((len(images),), c.inference_aug, dtype=torch.long, device=device)
        # Each image draws its augmentation noise and then its initial noise from its own
        # generator, so a batch gives the same images as single runs.
        aug_noise = torch.stack([torch.randn((3, c.high, c.high), generator=g) for g in gens])
        cond = augment(up, level, self._abar, noise=aug_noise.to(device))

        unet = in_precision(lambda x, t, lv: self.unet(x, t, None, lv), options.precision, device)
        net = fixed_batch(unet, self.rows)

        def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(torch.cat([x_t, cond], 1), t, level.to(x_t.dtype))

        denoiser = VPDenoiser(model, c.diffusion.prediction_type)
        if c.consistency:
            denoiser = consistent_with(denoiser, lo.to(device))
        plan = make_plan(self._abar, options.steps, spacing=options.spacing, karras=options.karras)
        noise = torch.stack([torch.randn((3, c.high, c.high), generator=g) for g in gens])
        with weights_cast_once(device):
            x = get_sampler(options.sampler)(
                denoiser, noise.to(device) * plan.init_noise_sigma, plan, generators=gens,
                callback=callback,
            )  # fmt: skip
        return [tensor_to_pil(img) for img in x.clamp(-1, 1)]


def run_cascade(
    images: Sequence[Image.Image], seeds: Sequence[int], stages: Sequence[Upscaler]
) -> list[Image.Image]:
    """Pass ``images`` through every stage, each image with its own seed at every stage."""
    out = list(images)
    for stage in stages:
        out = stage(out, seeds=seeds)
    return out
