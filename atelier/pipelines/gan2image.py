"""Text to image with a GAN: encode the prompts, draw each image's z from its seed, one pass of
the generator. Assembly only.

The parts come from elsewhere: a text encoder (``text/``), the generator (``models/``), the
noise and truncation (``gan/``). A batch gives the same images as single runs, bit for bit:
each z comes from its image's own generator, each prompt is encoded alone (a frozen encoder's
BERT, like any network, rounds differently with the batch around it), and the generator runs
at exactly ``rows`` rows (``fixed_batch.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from atelier.data.base import tensor_to_pil
from atelier.gan.noise import draw_z, truncate
from atelier.gan.options import GANOptions
from atelier.models.gan_generator import FusionGenerator
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.pipelines.interpolate import frame_weights, join_text, noise_path, text_path
from atelier.text.encoder import TextEmbedding, TextEncoder


@dataclass(frozen=True)
class GANStep:
    """What a callback sees: step ``i`` of ``total`` (a GAN takes one)."""

    i: int
    total: int


class GANPipeline:
    """``pipe(prompts, seeds=...) -> list of PIL images``."""

    def __init__(
        self, *, generator: FusionGenerator, text_encoder: TextEncoder, rows: int = 8
    ) -> None:
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        self.generator = generator.eval()
        self.text_encoder = text_encoder.eval()
        self.rows = rows

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Every prompt encoded on its own, as one embedding (B, ...)."""
        unique = {p: self.text_encoder.encode([p]) for p in dict.fromkeys(prompts)}
        text = join_text([unique[p] for p in prompts])
        return TextEmbedding(text.states.to(self.device), text.mask.to(self.device),
                             text.pooled.to(self.device))  # fmt: skip

    def noise(self, seeds: Sequence[int], options: GANOptions) -> torch.Tensor:
        """z (B, Z), image i's from a generator seeded ``seeds[i]``, truncated."""
        z = draw_z(seeds, self.generator.config.z_dim)
        return truncate(z, options.truncation).to(self.device)

    @torch.no_grad()
    def draw(self, z: torch.Tensor, text: TextEmbedding) -> torch.Tensor:
        """Images (B, 3, R, R) in [-1, 1] from noise and encoded text, ``rows`` at a time."""
        return fixed_batch(self.generator, self.rows)(z, text)

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: GANOptions = GANOptions(),
        callback: Callable[[GANStep], None] | None = None,
    ) -> list[Image.Image]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
        if negative_prompt.strip():
            raise ValueError("a GAN takes no negative prompt: it draws in one pass, with no "
                             "guidance to steer away from one")  # fmt: skip
        if not prompts:
            return []
        images = self.draw(self.noise(seeds, options), self.encode(prompts))
        if callback is not None:
            callback(GANStep(0, 1))
        return [tensor_to_pil(x) for x in images]

    @torch.no_grad()
    def interpolate(
        self,
        prompts: tuple[str, str],
        *,
        seeds: tuple[int, int],
        frames: int,
        options: GANOptions = GANOptions(),
    ) -> list[Image.Image]:
        """``frames`` images from (prompts[0], seeds[0]) to (prompts[1], seeds[1]): z along the
        arc between the two seeds' noise (slerp), the text along the line between the two
        prompts' embeddings."""
        weights = frame_weights(frames)
        z0, z1 = self.noise(list(seeds), options)
        z = noise_path(z0, z1, weights)  # (F, Z)
        text = text_path(self.encode([prompts[0]]), self.encode([prompts[1]]), weights)
        return [tensor_to_pil(x) for x in self.draw(z, text)]
