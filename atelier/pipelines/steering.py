"""Steering by gradient: a diffusion model sampled under CLIP guidance, a noised CLIP's guidance
or a noise-aware classifier's. Assembly only: the math is in ``diffusion/clip_guidance.py`` and
``diffusion/guidance.py``.

A *steer* is ``steer(pipe, prompts, seeds) -> wrap``, where ``wrap`` turns the pipeline's
denoiser into the steered one (``Text2Image.sample(wrap=...)``), so every sampler runs as it is.

- :func:`clip_steer`: CLIP's gradient through the x_0 estimate, decoded through the autoencoder
  for a latent model (Crowson's CLIP-guided diffusion); works on any diffusion model, with or
  without text conditioning of its own.
- :func:`noised_clip_steer`: a noised CLIP's gradient at x_t (GLIDE), log-density the scaled
  cosine exp(s) cos(f(x_t, t), g(prompt)): no decoding, no pass back through the network.
- :func:`classifier_steer`: the noise-aware cell classifier's log p(layout | x_t, t) (ADM), the
  layout parsed from the prompt and completed by the classifier's own beliefs (``layouts.py``).

Each image's cutouts come from a generator of its own seed (apart from the sampler's), and every
network runs per image or in fixed chunks: a batch equals its singles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from atelier.data.base import tensor_to_pil
from atelier.diffusion.clip_guidance import CLIPGuidanceOptions, CLIPTargets, clip_guidance
from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.guidance import classifier_guidance, gradient_guidance
from atelier.models.noised_space import NoisedSpace, space_digest
from atelier.pipelines.composable import split_and
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.pipelines.layouts import batch_chooser
from atelier.pipelines.text2image import Text2Image
from atelier.shapes.parse import parse_prompt

Wrap = Callable[[Denoiser], Denoiser]
Steer = Callable[[Text2Image, Sequence[str], Sequence[int]], Wrap]
# Cutout generators are seeded apart from the sampler's noise: seed s uses s + this.
GUIDANCE_SEED_OFFSET = 7_919_000_003


def guidance_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One generator per image for the steering's own random draws (cutouts, augmentations)."""
    return [torch.Generator().manual_seed(int(s) + GUIDANCE_SEED_OFFSET) for s in seeds]


def prompt_targets(encode_text: Callable[[list[str]], torch.Tensor],
                   prompts: Sequence[str]) -> CLIPTargets:  # fmt: skip
    """Each prompt's sub-prompts (``AND``, with ``:w`` weights) as unit text embeddings, each
    encoded alone (an embedding never depends on its batch), zero-weight padded to one P."""
    split = [split_and(p) for p in prompts]
    width = max(len(parts) for parts in split)
    embeds, weights = [], []
    for parts in split:
        rows = [encode_text([text])[0] for text, _ in parts]
        pad = width - len(rows)
        embeds.append(torch.stack(rows + [rows[0]] * pad))
        weights.append(torch.tensor([w for _, w in parts] + [0.0] * pad))
    return CLIPTargets(torch.stack(embeds), torch.stack(weights))


def clip_steer(clip: Any, options: CLIPGuidanceOptions) -> Steer:
    """CLIP guidance through x_0; ``clip`` has ``encode_image``, ``encode_text`` and
    ``image_size`` (a :class:`~atelier.models.clip.CLIP`)."""

    def steer(pipe: Text2Image, prompts: Sequence[str], seeds: Sequence[int]) -> Wrap:
        targets = prompt_targets(clip.encode_text, prompts)
        generators = guidance_generators(seeds)
        decode = None
        if pipe.autoencoder is not None:

            def decode(z: torch.Tensor) -> torch.Tensor:
                return pipe.autoencoder.decode(pipe.latent_space.from_diffusion(z))

        def wrap(denoiser: Denoiser) -> Denoiser:
            return clip_guidance(denoiser, embed=clip.encode_image, cut_size=clip.image_size,
                                 targets=targets, options=options, generators=generators,
                                 decode=decode)  # fmt: skip

        return wrap

    return steer


def check_space(pipe: Text2Image, space: NoisedSpace, who: str) -> None:
    """Refuse a noise-aware model trained on another diffusion model's latents, naming both."""
    here = space_digest(pipe.autoencoder, pipe.latent_space, pipe.diffusion,
                        tuple(pipe.latent_shape))  # fmt: skip
    if here != space.digest:
        raise ValueError(
            f"{who} reads the noised latents of {space.model} (space {space.digest}), not this "
            f"model's (space {here}); train one beside it: atelier train RECIPE "
            f"diffusion_model=NAME"
        )


def noised_clip_steer(noised: Any, space: NoisedSpace, scale: float, *, who: str,
                      max_shift: float | None = 1.0) -> Steer:  # fmt: skip
    """GLIDE's noised-CLIP guidance; ``noised`` is a
    :class:`~atelier.models.noised_clip.NoisedCLIP`. ``max_shift`` 1.0, as the classifier's: on
    the unconditional default it gave 0.10 of shapes-bench where 0.1 gave 0.00."""

    def steer(pipe: Text2Image, prompts: Sequence[str], seeds: Sequence[int]) -> Wrap:
        check_space(pipe, space, who)
        targets = prompt_targets(noised.encode_text, prompts)
        embed = fixed_batch(noised.encode_image, pipe.rows)

        def log_density(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            image = embed(x_t, t)  # (B, E)
            cos = (image[:, None] * targets.embeddings.to(image)).sum(-1)  # (B, P)
            return noised.temperature_scale() * (cos * targets.weights.to(cos)).sum(1)

        return lambda d: gradient_guidance(d, log_density, scale, max_shift=max_shift)

    return steer


def classifier_steer(classifier: Any, space: NoisedSpace, scale: float, *, who: str,
                     max_shift: float | None = 1.0) -> Steer:  # fmt: skip
    """ADM's classifier guidance by the noise-aware cell classifier, toward the prompt's layout.
    ``max_shift`` 1.0: on the unconditional default a cap of 0.1 left it 0.04 of shapes-bench
    and 1.0 gave 0.77 (3.0: 0.73; docs/steering.md)."""

    def steer(pipe: Text2Image, prompts: Sequence[str], seeds: Sequence[int]) -> Wrap:
        check_space(pipe, space, who)
        try:
            specs = [parse_prompt(p) for p in prompts]
        except ValueError as err:
            raise ValueError(f"classifier guidance reads shapes-world prompts: {err}") from None
        choose = batch_chooser(specs)
        net = fixed_batch(classifier, pipe.rows)
        return lambda d: classifier_guidance(d, net, choose, scale, max_shift=max_shift)

    return steer


class SteeredText2Image:
    """A diffusion model (``model.pipeline(size=)`` and the text-to-image attributes) whose every
    image is drawn under ``steer``; ``record`` is what its PNGs note of the steering."""

    def __init__(self, model: Any, steer: Steer, record: dict[str, Any]) -> None:
        self.model, self.steer, self.record = model, steer, record

    name = property(lambda self: self.model.name)
    resolution = property(lambda self: self.model.resolution)
    defaults = property(lambda self: self.model.defaults)
    path = property(lambda self: self.model.path)
    model_hash = property(lambda self: self.model.model_hash)
    runtime = property(lambda self: getattr(self.model, "runtime", "eager"))

    def network_evaluations(self, options: Any = None) -> int:
        return self.model.network_evaluations(options)

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: Any = None,
        callback: Callable[[Any], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]:
        def draw(texts: list[str], group_seeds: list[int]) -> list[Image.Image]:
            pipe = self.model.pipeline(size=size)  # after the LoRAs attach: it runs them eager
            wrap = self.steer(pipe, texts, group_seeds)
            z = pipe.sample(texts, seeds=group_seeds, negative_prompt=negative_prompt,
                            options=options or self.defaults, callback=callback,
                            wrap=wrap)  # fmt: skip
            with torch.no_grad():
                return [tensor_to_pil(img) for img in pipe.decode(z)]

        # The prompts' <lora:...> tags attach their LoRAs to the model under the steering; the
        # guide reads the texts without them.
        return self.model.with_loras(list(prompts), list(seeds), draw)
