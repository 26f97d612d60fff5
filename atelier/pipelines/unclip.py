"""unCLIP text-to-image and variations (Ramesh et al. 2022): the prior draws a CLIP image
embedding z_i from the caption, the decoder draws the image from z_i. Assembly only.

The parts: a CLIP, whose text tower reads the caption for both stages (its token states and its
text embedding z_t) and whose image tower embeds a source image for variations; the prior
network (``models/prior.py``), which works in the CLIP space normalised per dimension (a
:class:`~atelier.models.latent_space.LatentSpace` over vectors); the decoder UNet, conditioned on
z_i (``models/unet.py``, ``image_embed_dim``) and on the caption as GLIDE's optional second
condition; and ``diffusion/``'s plans, samplers and classifier-free guidance for both stages.
Guidance's unconditional rows drop the caption (the negative prompt's, "" by default) and, for
the decoder, z_i too.

Every image has one generator, seeded by its seed: the prior's candidates draw their noise from
it, then the decoder. Prompts and images are encoded one at a time and the networks run in
fixed-size chunks (``fixed_batch.py``), so a batch gives the same images as single runs, bit for
bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor, fit_images, tensor_to_pil
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.guidance import classifier_free_guidance
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import StepInfo, get_sampler
from atelier.models.clip import CLIP
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorTransformer
from atelier.models.unet import ImageCondition, UNet
from atelier.pipelines.fixed_batch import fixed_batch, map_rows
from atelier.text.encoder import TextEmbedding
from atelier.unclip.embeddings import pick_closer, text_diff
from atelier.unclip.options import UnCLIPOptions

Callback = Callable[[StepInfo], None]


@dataclass(frozen=True)
class TextDiff:
    """DALL-E 2's text diff (``unclip/embeddings.py``): move an image's embedding ``amount`` of
    the way from the caption ``away`` toward the caption ``toward``."""

    toward: str
    away: str
    amount: float


@dataclass(frozen=True)
class DecoderCondition:
    """What the decoder reads: the caption's CLIP text states and the image embedding."""

    text: TextEmbedding
    image: ImageCondition


class UnCLIP:
    """``pipe(prompts, seeds=...) -> list of PIL images``; :meth:`decode` draws images from given
    image embeddings (variations)."""

    def __init__(
        self,
        *,
        clip: CLIP,
        prior: PriorTransformer,
        prior_diffusion: DiffusionConfig,
        embedding_space: LatentSpace,
        decoder: UNet,
        decoder_diffusion: DiffusionConfig,
        resolution: int,
        rows: int = 8,
    ) -> None:
        self.clip = clip.eval()
        self.prior = prior.eval()
        self.decoder = decoder.eval()
        self.prior_diffusion, self.decoder_diffusion = prior_diffusion, decoder_diffusion
        self.space = embedding_space
        self.resolution = resolution
        self.rows = rows
        self._prior_abar = prior_diffusion.alphas_cumprod()
        self._decoder_abar = decoder_diffusion.alphas_cumprod()

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    # --------------------------------------------------------------------------- CLIP

    @torch.no_grad()
    def caption(self, prompts: Sequence[str]) -> TextEmbedding:
        """CLIP's reading of ``prompts``, one at a time: its text tower's states (B, T, W), their
        mask and, as ``pooled``, the text embeddings z_t (B, E) (zero for the empty prompt)."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        parts = [self.clip.text.encode([p]) for p in prompts]
        z_t = torch.cat([self.clip.encode_text([p]) for p in prompts])  # (B, E)
        return TextEmbedding(torch.cat([p.states for p in parts]),
                             torch.cat([p.mask for p in parts]), z_t)  # fmt: skip

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP text embeddings z_t (B, E) of ``prompts``, one at a time."""
        return torch.cat([self.clip.encode_text([p]) for p in prompts])

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIP image embeddings z_i (B, E) of ``images``, each resized to CLIP's input side."""
        pixels = [array_to_tensor(np.asarray(im.convert("RGB")))[None] for im in images]
        size = self.clip.image_size
        return torch.cat([self.clip.encode_image(fit_images(x.to(self.device), size))
                          for x in pixels])  # fmt: skip

    # --------------------------------------------------------------------------- stages

    @torch.no_grad()
    def sample_embeddings(
        self,
        prompts: Sequence[str],
        *,
        generators: Sequence[torch.Generator],
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> torch.Tensor:
        """The prior's image embeddings z_i (B, E) for ``prompts``: ``options.candidates`` per
        image, each from the image's generator in turn, the closest to z_t kept."""
        k = options.candidates
        caption = self.caption(prompts)
        negative = self.caption([negative_prompt] * len(prompts))
        cond, uncond = (map_rows(c, lambda v: v.repeat_interleave(k, 0))
                        for c in (caption, negative))  # fmt: skip
        model = classifier_free_guidance(fixed_batch(self.prior, self.rows), cond, uncond,
                                         options.prior_guidance)  # fmt: skip
        denoiser = VPDenoiser(model, self.prior_diffusion.prediction_type)
        plan = make_plan(self._prior_abar, options.prior_steps, spacing="trailing")
        row_generators = [g for g in generators for _ in range(k)]  # image b's rows in turn
        width = self.prior.config.embed_dim
        noise = torch.stack([torch.randn(width, generator=g) for g in row_generators])
        x = get_sampler(options.prior_sampler)(
            denoiser, noise.to(self.device) * plan.init_noise_sigma, plan,
            generators=row_generators, callback=callback,
        )  # fmt: skip
        z = torch.nn.functional.normalize(self.space.from_diffusion(x), dim=-1)  # (B K, E)
        return pick_closer(z.unflatten(0, (len(prompts), k)), caption.pooled)

    @torch.no_grad()
    def decode(
        self,
        z_i: torch.Tensor,
        prompts: Sequence[str],
        *,
        generators: Sequence[torch.Generator],
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> torch.Tensor:
        """Images (B, 3, S, S) in [-1, 1] drawn by the decoder from embeddings ``z_i`` (B, E),
        with ``prompts`` as the optional caption ("" for none)."""
        if len(prompts) != len(z_i) or len(generators) != len(z_i):
            raise ValueError(f"give one prompt and one generator per embedding ({len(z_i)})")
        b, device = len(z_i), self.device
        kept = torch.zeros(b, dtype=torch.bool, device=device)
        z_i = z_i.to(device)
        cond = DecoderCondition(self.caption(prompts), ImageCondition(z_i, kept))
        uncond = DecoderCondition(self.caption([negative_prompt] * b), ImageCondition(z_i, ~kept))
        net = fixed_batch(lambda x, t, c: self.decoder(x, t, c.text, image=c.image), self.rows)
        model = classifier_free_guidance(net, cond, uncond, options.guidance)
        denoiser = VPDenoiser(model, self.decoder_diffusion.prediction_type)
        plan = make_plan(self._decoder_abar, options.steps, spacing="trailing")
        shape = (self.decoder.config.in_channels, self.resolution, self.resolution)
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
        x = get_sampler(options.sampler)(
            denoiser, noise.to(device) * plan.init_noise_sigma, plan, generators=generators,
            callback=callback,
        )  # fmt: skip
        return x.clamp(-1, 1)

    # --------------------------------------------------------------------------- text-to-image

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> list[Image.Image]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        first, then = _stages(callback, options.prior_steps, options.steps)
        z_i = self.sample_embeddings(prompts, generators=generators,
                                     negative_prompt=negative_prompt, options=options,
                                     callback=first)  # fmt: skip
        x = self.decode(z_i, prompts, generators=generators, negative_prompt=negative_prompt,
                        options=options, callback=then)  # fmt: skip
        return [tensor_to_pil(img) for img in x]

    @torch.no_grad()
    def variations(
        self,
        image: Image.Image,
        *,
        seeds: Sequence[int],
        prompt: str = "",
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        diff: TextDiff | None = None,
        callback: Callback | None = None,
    ) -> list[Image.Image]:
        """New images of ``image``: the decoder draws its CLIP image embedding (moved by
        ``diff``, if given) once per seed, with ``prompt`` as the optional caption."""
        z_i = self.image_embeddings([image])  # (1, E)
        if diff is not None:
            toward, away = self.text_embeddings([diff.toward, diff.away]).chunk(2)
            z_i = text_diff(z_i, toward, away, diff.amount)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        x = self.decode(z_i.expand(len(seeds), -1), [prompt] * len(seeds), generators=generators,
                        negative_prompt=negative_prompt, options=options,
                        callback=callback)  # fmt: skip
        return [tensor_to_pil(img) for img in x]


def _stages(callback: Callback | None, prior_steps: int, decoder_steps: int
            ) -> tuple[Callback | None, Callback | None]:  # fmt: skip
    """The callback as the prior's and the decoder's: one count of steps over both stages."""
    if callback is None:
        return None, None
    total = prior_steps + decoder_steps
    return (
        lambda info: callback(replace(info, total=total)),
        lambda info: callback(replace(info, i=prior_steps + info.i, total=total)),
    )
