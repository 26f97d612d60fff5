"""unCLIP text-to-image and variations (Ramesh et al. 2022): the prior draws a CLIP image
embedding z_i from the caption, the decoder draws the image from z_i. Assembly only.

Two stages, one pipeline chaining them (as Karlo's sampler chains its prior, decoder and
upsampler):

- :class:`UnCLIPPrior`: the prior network (``models/prior.py``) reads the caption as CLIP's text
  tower gives it (token states, and the text embedding z_t) and works in the CLIP space normalised
  per dimension (a :class:`~atelier.models.latent_space.LatentSpace` over vectors).
- :class:`UnCLIPDecoder`: the decoder UNet (``models/unet.py`` with ``image_embed_dim``) draws
  pixels from z_i, with the caption's states as GLIDE's optional second condition.
- :class:`UnCLIP`: text-to-image (prior, then decoder), variations (the decoder on an image's
  own z_i, optionally moved by a text diff) and interpolations (the decoder along the great
  circle between two images' z_i, at one seed).

Both stages use ``diffusion/``'s plans, samplers and classifier-free guidance; the unconditional
rows read the negative prompt ("" by default) and, in the decoder, the learned null embedding in
place of z_i. Every image has one generator, seeded by its seed: the prior's candidates draw
their noise from it, then the decoder. Prompts and images are encoded one at a time and the
networks run in fixed-size chunks (``fixed_batch.py``), so a batch gives the same images as
single runs, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
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
from atelier.pipelines.interpolate import frame_weights
from atelier.text.encoder import TextEmbedding
from atelier.unclip.embeddings import pick_closer, slerp, text_diff
from atelier.unclip.options import UnCLIPOptions

Callback = Callable[[StepInfo], None]


@torch.no_grad()
def read_caption(clip: CLIP, prompts: Sequence[str]) -> TextEmbedding:
    """CLIP's reading of ``prompts``, one at a time: its text tower's states (B, T, W), their mask
    and, as ``pooled``, the text embeddings z_t (B, E) (zero for a blank prompt)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    parts = [clip.text.encode([p]) for p in prompts]
    z_t = torch.cat([clip.encode_text([p]) for p in prompts])  # (B, E)
    return TextEmbedding(torch.cat([p.states for p in parts]), torch.cat([p.mask for p in parts]),
                         z_t)  # fmt: skip


class UnCLIPPrior:
    """Captions -> CLIP image embeddings z_i (B, E), unit vectors."""

    def __init__(self, *, clip: CLIP, prior: PriorTransformer, diffusion: DiffusionConfig,
                 space: LatentSpace, rows: int = 8) -> None:  # fmt: skip
        self.clip, self.prior = clip.eval(), prior.eval()
        self.diffusion, self.space, self.rows = diffusion, space, rows
        self._abar = diffusion.alphas_cumprod()

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        *,
        generators: Sequence[torch.Generator],
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> torch.Tensor:
        """``options.candidates`` embeddings per caption, each from its image's generator in
        turn, and of those the one closest to z_t (DALL-E 2's pick)."""
        if len(generators) != len(prompts):
            raise ValueError(f"give one generator per prompt ({len(prompts)})")
        k, device = options.candidates, next(self.prior.parameters()).device
        caption = read_caption(self.clip, prompts)
        negative = read_caption(self.clip, [negative_prompt] * len(prompts))
        cond, uncond = (map_rows(c.to(device), lambda v: v.repeat_interleave(k, 0))
                        for c in (caption, negative))  # fmt: skip
        model = classifier_free_guidance(fixed_batch(self.prior, self.rows), cond, uncond,
                                         options.prior_guidance)  # fmt: skip
        denoiser = VPDenoiser(model, self.diffusion.prediction_type)
        plan = make_plan(self._abar, options.prior_steps, spacing="trailing")
        row_generators = [g for g in generators for _ in range(k)]  # image b's rows in turn
        width = self.prior.config.embed_dim
        noise = torch.stack([torch.randn(width, generator=g) for g in row_generators])
        x = get_sampler(options.prior_sampler)(
            denoiser, noise.to(device) * plan.init_noise_sigma, plan,
            generators=row_generators, callback=callback,
        )  # fmt: skip
        z = F.normalize(self.space.from_diffusion(x), dim=-1)  # (B K, E)
        return pick_closer(z.unflatten(0, (len(prompts), k)), caption.pooled.to(device))


@dataclass(frozen=True)
class DecoderCondition:
    """What the decoder reads: the caption's CLIP text states and the image embedding."""

    text: TextEmbedding
    image: ImageCondition


class UnCLIPDecoder:
    """CLIP image embeddings z_i (B, E) and optional captions -> images (B, 3, S, S)."""

    def __init__(self, *, clip: CLIP, decoder: UNet, diffusion: DiffusionConfig, resolution: int,
                 rows: int = 8) -> None:  # fmt: skip
        self.clip, self.decoder = clip.eval(), decoder.eval()
        self.diffusion, self.resolution, self.rows = diffusion, resolution, rows
        self._abar = diffusion.alphas_cumprod()

    @torch.no_grad()
    def __call__(
        self,
        z_i: torch.Tensor,
        prompts: Sequence[str],
        *,
        generators: Sequence[torch.Generator],
        negative_prompt: str = "",
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] drawn from ``z_i``, with ``prompts`` as the caption ("" for none)."""
        if len(prompts) != len(z_i) or len(generators) != len(z_i):
            raise ValueError(f"give one prompt and one generator per embedding ({len(z_i)})")
        b, device = len(z_i), next(self.decoder.parameters()).device
        kept = torch.zeros(b, dtype=torch.bool, device=device)
        z_i = z_i.to(device)
        caption = read_caption(self.clip, prompts).to(device)
        negative = read_caption(self.clip, [negative_prompt] * b).to(device)
        cond = DecoderCondition(caption, ImageCondition(z_i, kept))
        uncond = DecoderCondition(negative, ImageCondition(z_i, ~kept))
        net = fixed_batch(lambda x, t, c: self.decoder(x, t, c.text, image=c.image), self.rows)
        model = classifier_free_guidance(net, cond, uncond, options.guidance)
        denoiser = VPDenoiser(model, self.diffusion.prediction_type)
        plan = make_plan(self._abar, options.steps, spacing="trailing")
        shape = (self.decoder.config.in_channels, self.resolution, self.resolution)
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
        x = get_sampler(options.sampler)(
            denoiser, noise.to(device) * plan.init_noise_sigma, plan, generators=generators,
            callback=callback,
        )  # fmt: skip
        return x.clamp(-1, 1)

    def preview(self, x: torch.Tensor) -> torch.Tensor:
        """A progress preview of a step's x_0 estimate (B, 3, S, S): the decoder draws pixels."""
        return x.clamp(-1, 1)


@dataclass(frozen=True)
class TextDiff:
    """DALL-E 2's text diff (``unclip/embeddings.py``): move an image's embedding ``amount`` of
    the way from the caption ``away`` toward the caption ``toward``."""

    toward: str
    away: str
    amount: float


class UnCLIP:
    """``pipe(prompts, seeds=...) -> list of PIL images``, and :meth:`variations` of an image."""

    def __init__(self, prior: UnCLIPPrior, decoder: UnCLIPDecoder) -> None:
        self.prior, self.decoder = prior, decoder
        self.clip = decoder.clip

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
        if not prompts:
            return []
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        first, then = _stages(callback, options.prior_steps, options.steps)
        z_i = self.prior(prompts, generators=generators, negative_prompt=negative_prompt,
                         options=options, callback=first)  # fmt: skip
        x = self.decoder(z_i, prompts, generators=generators, negative_prompt=negative_prompt,
                         options=options, callback=then)  # fmt: skip
        return [tensor_to_pil(img) for img in x]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIP image embeddings z_i (B, E) of ``images``, one at a time, each resized to
        CLIP's input side."""
        size, device = self.clip.image_size, next(self.clip.parameters()).device
        pixels = [array_to_tensor(np.asarray(im.convert("RGB")))[None] for im in images]
        return torch.cat([self.clip.encode_image(fit_images(x.to(device), size)) for x in pixels])

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
        if not seeds:
            return []
        z_i = self.image_embeddings([image])  # (1, E)
        if diff is not None:
            z_t = read_caption(self.clip, [diff.toward, diff.away]).pooled.to(z_i)
            z_i = text_diff(z_i, z_t[:1], z_t[1:], diff.amount)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        x = self.decoder(z_i.expand(len(seeds), -1), [prompt] * len(seeds),
                         generators=generators, negative_prompt=negative_prompt,
                         options=options, callback=callback)  # fmt: skip
        return [tensor_to_pil(img) for img in x]

    @torch.no_grad()
    def interpolate(
        self,
        images: tuple[Image.Image, Image.Image],
        *,
        seed: int,
        frames: int,
        options: UnCLIPOptions = UnCLIPOptions(),
        callback: Callback | None = None,
    ) -> list[Image.Image]:
        """DALL-E 2's interpolation of two images (section 3.2): z_i along the great circle
        between their embeddings, slerp(z_a, z_b, theta) for ``frames`` theta from 0 to 1, each
        decoded with the generator of one ``seed`` (the paper fixes the decoder's seed across a
        row), so only the embedding moves from frame to frame."""
        z_a, z_b = self.image_embeddings(list(images)).split(1)  # (1, E) each
        theta = torch.tensor(frame_weights(frames), dtype=z_a.dtype, device=z_a.device)
        path = slerp(z_a, z_b, theta)  # (F, E)
        generators = [torch.Generator().manual_seed(int(seed)) for _ in range(frames)]
        x = self.decoder(path, [""] * frames, generators=generators, options=options,
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
