"""Editing pipelines on a text-to-image model: img2img, variations, inpainting, outpainting.

- img2img (SDEdit; Meng et al. 2022): encode the image, noise it to ``strength``, denoise
  under the prompt. Strength 1 ignores the image; 0.3 keeps its layout and changes details.
- variations: img2img of an image under a caption (or the empty prompt), several seeds.
- inpainting, ``method="masked"``: any model; the known region's x_0 is held to the image's
  latents at every step (``diffusion/inpainting.py``), optionally with RePaint jumps.
  ``method="trained"``: a model fine-tuned as Stable Diffusion inpainting was (recipe
  ``shapes-ldm-inpaint``), whose UNet also takes the mask and the masked latents.
- outpainting: pad the canvas with the world's white background and inpaint the new border.
Every result is composited over the original outside the (feathered) mask, so pixels the mask
does not touch are exactly the input's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor, tensor_to_pil
from atelier.diffusion.inpainting import keep_known
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.samplers import StepInfo, deterministic
from atelier.pipelines.masks import (
    composite,
    latent_keep_mask,
    outpaint_canvas,
    prepare_image,
    prepare_mask,
)
from atelier.pipelines.text2image import Start, Text2Image

InpaintMethod = Literal["masked", "trained"]


def source_keeping(defaults: SamplingOptions) -> SamplingOptions:
    """A model's default options for img2img and variations: its sampler, made deterministic.

    A stochastic sampler adds fresh noise at every step, so an edit keeps less of its source: on
    the default model, img2img at strength 0.3 kept the source caption in 0.65 of 100 cases with
    dpmpp_2m_sde and 0.75 with dpmpp_2m (``bench/editing.py --only img2img``). Text-to-image,
    inpainting and outpainting, which draw new content, keep the model's own sampler."""
    return replace(defaults, sampler=deterministic(defaults.sampler))


class Editor:
    """The editing operations of one :class:`Text2Image` pipeline."""

    def __init__(self, pipe: Text2Image) -> None:
        self.pipe = pipe

    @property
    def is_inpainting_model(self) -> bool:
        """A UNet trained with the mask and masked latents as extra inputs (2 C + 1 channels)."""
        return self.pipe.network.config.in_channels == 2 * self.pipe.latent_shape[0] + 1

    @property
    def factor(self) -> int:
        """Image pixels per latent pixel."""
        return self.pipe.resolution_factor

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this: the VAE factor times the UNet's downsampling."""
        return self.factor * 2 ** (len(self.pipe.network.config.block_channels) - 1)

    def _latents(self, images: Sequence[Image.Image]) -> torch.Tensor:
        x = torch.stack([array_to_tensor(np.asarray(prepare_image(im, multiple=self.multiple)))
                         for im in images])  # fmt: skip
        return self.pipe.encode(x)

    def _sample(self, prompts, seeds, z, **kwargs) -> list[Image.Image]:
        """Sample latents of ``z``'s size and decode them."""
        out = self.pipe.sample(prompts, seeds=seeds, size=tuple(z.shape[-2:]), **kwargs)
        return [tensor_to_pil(img) for img in self.pipe.decode(out)]

    def img2img(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        strength: float,
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
    ) -> list[Image.Image]:
        if len(images) != len(prompts):
            raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        z = self._latents(images)
        return self._sample(
            prompts, seeds, z, negative_prompt=negative_prompt, options=options,
            callback=callback, start=Start(z, strength),
        )  # fmt: skip

    def variations(
        self,
        image: Image.Image,
        n: int,
        *,
        seed: int,
        prompt: str = "",
        strength: float = 0.6,
        options: SamplingOptions = SamplingOptions(),
    ) -> list[Image.Image]:
        """``n`` variations of ``image`` (seeds ``seed .. seed + n - 1``)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self.img2img([image] * n, [prompt] * n, seeds=[seed + k for k in range(n)],
                            strength=strength, options=options)  # fmt: skip

    def inpaint(
        self,
        images: Sequence[Image.Image],
        masks: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        method: InpaintMethod = "masked",
        grow: int = 0,
        feather: float = 0.0,
        resample: tuple[int, int] | None = None,
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
    ) -> list[Image.Image]:
        if not len(images) == len(masks) == len(prompts):
            raise ValueError("give one mask and one prompt per image")
        if method not in ("masked", "trained"):
            raise ValueError(f"unknown inpainting method {method!r}; valid: masked, trained")
        if method == "trained" and not self.is_inpainting_model:
            raise ValueError(
                "method 'trained' needs an inpainting model (extra UNet inputs for the mask and "
                "the masked image, e.g. shapes-ldm-inpaint); this model has none: use --method "
                "masked or --model shapes-ldm-inpaint"
            )
        if method == "masked" and self.is_inpainting_model:
            raise ValueError("this is an inpainting model: use --method trained with it")
        rgb = [prepare_image(im, multiple=self.multiple) for im in images]
        repaint = [prepare_mask(m, im, grow=grow, feather=feather) for m, im in zip(masks, rgb)]
        z = self._latents(rgb)
        keep = torch.cat([latent_keep_mask(r, self.factor) for r in repaint]).to(z)
        if method == "trained":
            out = self._sample(
                prompts, seeds, z, negative_prompt=negative_prompt, options=options,
                callback=callback, extra=torch.cat([1 - keep, keep * z], dim=1),
            )  # fmt: skip
        else:
            out = self._sample(
                prompts, seeds, z, negative_prompt=negative_prompt, options=options,
                callback=callback, wrap=lambda d: keep_known(d, z, keep), resample=resample,
            )  # fmt: skip
        return [composite(g, o, r) for g, o, r in zip(out, rgb, repaint)]

    def outpaint(
        self,
        image: Image.Image,
        prompt: str,
        *,
        seed: int,
        left: int = 0,
        right: int = 0,
        top: int = 0,
        bottom: int = 0,
        feather: float = 0.0,
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
    ) -> Image.Image:
        """Extend the canvas by the given pixels per side and paint the new area: with the
        model's own inpainting inputs if it has them (``method="trained"``), else by masked
        sampling."""
        canvas, mask = outpaint_canvas(image, left=left, right=right, top=top, bottom=bottom)
        method: InpaintMethod = "trained" if self.is_inpainting_model else "masked"
        return self.inpaint([canvas], [mask], [prompt], seeds=[seed], method=method,
                            feather=feather, negative_prompt=negative_prompt, options=options,
                            callback=callback)[0]  # fmt: skip
