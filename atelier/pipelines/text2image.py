"""Text-to-image: encode the prompt, sample latents with guidance, decode. Assembly only.

The parts come from elsewhere: a text encoder (``text/``), a denoising network (``models/``), an
optional autoencoder (latent diffusion; without one the network works in pixel space), the
sampling plan, sampler and guidance (``diffusion/``). Every image has its own seeded generator
and the network runs in fixed-size chunks (``fixed_batch.py``), so a batch gives the same images
as single runs, bit for bit: ``rows`` = 2, a guided image's conditional and unconditional rows,
so one image is never padded, and a batch in calls of ``wide`` rows where those are checked to
give the same bits. The autoencoder runs one image a call (its cost per image hardly falls with
the batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn

from atelier.data.base import tensor_to_pil
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.denoiser import Denoiser, VPDenoiser
from atelier.diffusion.guidance import classifier_free_guidance, embedded_guidance
from atelier.diffusion.inpainting import sample_with_jumps
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.plan import make_plan, start_step_for_strength
from atelier.diffusion.samplers import StepInfo, get_sampler
from atelier.models.latent_space import LatentSpace
from atelier.pipelines.composable import compose
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.pipelines.runtime import in_precision, weights_cast_once
from atelier.text.encoder import TextEmbedding, TextEncoder


class Decoder(Protocol):
    """What the pipeline needs of an autoencoder: latents -> images in [-1, 1]."""

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...

    def eval(self) -> Decoder: ...


@dataclass(frozen=True)
class Start:
    """Where img2img begins: clean latents (B, C, h, w) in the diffusion model's space, and a
    strength in (0, 1] (1 runs every step from pure noise, 0.3 the last 30% of the steps)."""

    latents: torch.Tensor
    strength: float


@dataclass(frozen=True)
class WithInputs:
    """Text conditioning plus extra input channels, batched together through guidance."""

    text: TextEmbedding
    inputs: torch.Tensor


def _with_inputs(network: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(x: torch.Tensor, t: torch.Tensor, cond: WithInputs, **kwargs: Any) -> torch.Tensor:
        return network(torch.cat([x, cond.inputs.to(x)], dim=1), t, cond.text, **kwargs)

    return run


def _with_scale(network: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``network(x, t, cond, guidance=s)`` as ``(x, t, cond, s)``, so fixed chunks split s too."""

    def run(x: torch.Tensor, t: torch.Tensor, cond: Any, scale: torch.Tensor) -> torch.Tensor:
        return network(x, t, cond, guidance=scale)

    return run


class Text2Image:
    """``pipe(prompts, seeds=...) -> list of PIL images``."""

    def __init__(
        self,
        *,
        network: nn.Module,
        text_encoder: TextEncoder,
        diffusion: DiffusionConfig,
        latent_shape: tuple[int, int, int],
        autoencoder: Decoder | None = None,
        latent_space: LatentSpace = LatentSpace(),
        rows: int = 2,
        wide: tuple[int, ...] = (4, 8),
    ) -> None:
        self.network = network.eval()
        self.text_encoder = text_encoder.eval()
        self.autoencoder = autoencoder.eval() if autoencoder is not None else None
        self.diffusion = diffusion
        self.latent_shape = latent_shape
        self.latent_space = latent_space
        self.rows = rows
        self.wide = tuple(w for w in wide if w > rows)  # those that are wider than rows
        self._abar = diffusion.alphas_cumprod()

    @property
    def resolution_factor(self) -> int:
        """Image pixels per latent pixel along a side (1 in pixel space)."""
        if self.autoencoder is None:
            return 1
        return self.autoencoder.config.downsampling_factor

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def guidance_embedded(self) -> bool:
        """Whether the network takes the guidance scale as an input (a latent consistency
        model): it is guided without an unconditional pass, so without a negative prompt."""
        return bool(getattr(getattr(self.network, "config", None), "guidance_embedding", False))

    def initial_noise(
        self, seeds: Sequence[int], size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, list[torch.Generator]]:
        """Unit noise (B, C, h, w), image i from its own generator seeded ``seeds[i]``; ``size``
        (h, w) overrides the model's latent size."""
        shape = self.latent_shape if size is None else (self.latent_shape[0], *size)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
        return noise.to(self.device), generators

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
        size: tuple[int, int] | None = None,
    ) -> list[Image.Image]:
        z = self.sample(
            prompts, seeds=seeds, negative_prompt=negative_prompt, options=options,
            callback=callback, size=size,
        )  # fmt: skip
        return [tensor_to_pil(img) for img in self.decode(z)]

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: SamplingOptions = SamplingOptions(),
        callback: Callable[[StepInfo], None] | None = None,
        start: Start | None = None,
        wrap: Callable[[Denoiser], Denoiser] | None = None,
        resample: tuple[int, int] | None = None,
        extra: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
        noise: torch.Tensor | None = None,
        text: TextEmbedding | None = None,
    ) -> torch.Tensor:
        """Latents (B, C, h, w) in the diffusion model's space.

        ``start`` begins part-way from given clean latents (img2img, SDEdit): they are noised to
        the level of the first step that ``start.strength`` keeps, with each image's own noise.
        ``wrap`` wraps the denoiser (masked inpainting replaces its known region's x_0).
        ``resample=(jump, count)`` runs RePaint's resampling jumps (``diffusion/inpainting.py``).
        A prompt with ``AND`` is composed of its sub-prompts (``pipelines/composable.py``).
        ``extra`` (B, E, h, w) is concatenated to the network's input at every step, for
        networks trained with extra input channels (Stable Diffusion inpainting: mask and
        masked latents). ``size`` (h, w) samples latents of another size than the model's
        (editing an image of another size); ``start`` latents set it when given.
        ``noise`` (B, C, h, w) is the unit initial noise instead of each seed's draw (the seeds
        still seed the per-step noise of stochastic samplers), and ``text`` the prompts'
        encoding instead of encoding ``prompts`` (which then only count the images): both for
        interpolating between two draws (``pipelines/interpolate.py``).
        A network that takes the guidance scale as an input (a latent consistency model) reads
        ``options.guidance`` itself, one pass a step with no unconditional rows.
        ``options.precision`` is the network's arithmetic (``runtime.py``); bf16 is refused with
        a ValueError where the device lacks it.
        """
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
        if text is None:
            texts, composition = compose(prompts)  # AUTOMATIC1111's AND: composable diffusion
            cond = self.text_encoder.encode(texts)
        else:
            cond, composition = text, None
        if self.guidance_embedded:
            self._check_embedded(negative_prompt, composition is not None, options)
            uncond = None
        else:
            uncond = self.text_encoder.encode([negative_prompt] * len(prompts))

        network = in_precision(self.network, options.precision, self.device)
        if extra is not None:
            rows = extra if composition is None else extra[composition.image.to(extra.device)]
            cond = WithInputs(cond, rows)
            uncond = WithInputs(uncond, extra) if uncond is not None else None
            network = _with_inputs(network)
        if self.guidance_embedded:
            net = fixed_batch(_with_scale(network), self.rows, wide=self.wide)
            model = embedded_guidance(net, cond, options.guidance)
        else:
            net = fixed_batch(network, self.rows, wide=self.wide)
            model = classifier_free_guidance(
                net, cond, uncond, options.guidance, rescale=options.guidance_rescale,
                composition=composition,
            )  # fmt: skip
        denoiser: Denoiser = VPDenoiser(model, self.diffusion.prediction_type)
        if wrap is not None:
            denoiser = wrap(denoiser)
        plan = make_plan(self._abar, options.steps, spacing=options.spacing, karras=options.karras)
        if start is not None and size is None:
            size = tuple(start.latents.shape[-2:])
        drawn, generators = self.initial_noise(seeds, size)
        if noise is not None and noise.shape != drawn.shape:
            raise ValueError(f"initial noise is {tuple(noise.shape)}, expected "
                             f"{tuple(drawn.shape)}")  # fmt: skip
        noise = drawn if noise is None else noise.to(drawn)
        sampler = get_sampler(options.sampler)
        if start is None:
            first, x = 0, noise * plan.init_noise_sigma
        else:
            if start.latents.shape != noise.shape:
                raise ValueError(
                    f"start latents are {tuple(start.latents.shape)}, expected {tuple(noise.shape)}"
                )
            first = start_step_for_strength(options.steps, start.strength)
            x = start.latents.to(noise) + noise * plan.sigmas[first].to(noise.dtype)
        with weights_cast_once(self.device):
            if resample is not None:
                jump, count = resample
                return sample_with_jumps(
                    sampler, denoiser, x, plan, jump=jump, resample=count, generators=generators,
                    callback=callback, start_step=first,
                )  # fmt: skip
            return sampler(
                denoiser, x, plan, generators=generators, callback=callback, start_step=first
            )

    def _check_embedded(
        self, negative_prompt: str, composed: bool, options: SamplingOptions
    ) -> None:
        """Refuse what needs an unconditional pass, which a network guided by its input lacks."""
        refused = [
            what for what, asked in (
                (f"a negative prompt ({negative_prompt!r})", negative_prompt != ""),
                ("prompts composed with AND", composed),
                (f"guidance rescale ({options.guidance_rescale})", options.guidance_rescale != 0),
            ) if asked
        ]  # fmt: skip
        if refused:
            raise ValueError(
                f"this model takes the guidance scale as an input and makes no unconditional "
                f"pass, so it cannot use {' or '.join(refused)}"
            )

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> latents in the diffusion model's space (the
        posterior mode; identity in pixel space)."""
        if self.autoencoder is None:
            return images.to(self.device)
        encode = getattr(self.autoencoder, "encode", None)
        if encode is None:
            raise TypeError("this pipeline's autoencoder cannot encode images")
        # One image a call, as for decoding: an image's latents never depend on its batch.
        mode = fixed_batch(lambda x: encode(x).mode(), 1)
        return self.latent_space.to_diffusion(mode(images.to(self.device)))

    @torch.no_grad()
    def preview(self, z: torch.Tensor) -> torch.Tensor:
        """A progress preview of latents: decoded as they come, in one call rather than
        ``decode``'s call per image (a preview need not be batch-invariant)."""
        if self.autoencoder is None:
            return z.clamp(-1, 1)
        return self._to_pixels(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1] (identity in pixel space)."""
        if self.autoencoder is None:
            return z.clamp(-1, 1)
        return fixed_batch(self._to_pixels, 1)(z)

    def _to_pixels(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(self.latent_space.from_diffusion(z)).clamp(-1, 1)
