"""VQGAN-CLIP (Crowson et al. 2022): optimise an image tokenizer's latent grid until CLIP agrees.

No generator is trained: the image is the tokenizer's decoding of a continuous grid z (1, D, h, w)
that Adam moves to lower CLIP's spherical distance to the prompts. Each iteration

    c = nearest codes of z,  z_q = z + sg(e_c - z)              (straight-through quantisation)
    X = G(z_q),  X' = X + sg(clamp(X, -1, 1) - X)                (straight-through clamp)
    L = sum_p w_p mean_k d(E(cutout_k(X')), z_p) + lambda ||z - z_init||^2 / N

(d the spherical distance, ``diffusion/clip_guidance.py``; cutouts and their augmentations,
``diffusion/cutouts.py``), then one Adam step on z, whose every channel is kept inside the
codebook's range. So the image is always one a token model could draw: every position one of
the K codes. z starts at the codes of random tokens (``init=None``) or at the encoder's output
for an init image, and ``init_weight`` lambda holds it near that start.

Prompts: ``"a red circle | a blue square:0.5 | green:-1"``: sub-prompts split at ``|``, each with
an optional trailing ``:w`` weight (default 1; negative pushes away), as the VQGAN-CLIP notebooks
write them. All randomness (start codes, cutouts) comes from the image's own seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from atelier.data.base import tensor_to_pil
from atelier.diffusion.clip_guidance import CLIPGuidanceOptions, clip_loss
from atelier.diffusion.cutouts import CutoutOptions

_WEIGHT = re.compile(r"^(?P<text>.*?)\s*:\s*(?P<weight>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$", re.S)


def parse_weighted_prompts(prompt: str) -> list[tuple[str, float]]:
    """``"a:2 | b | c:-0.5"`` -> [("a", 2.0), ("b", 1.0), ("c", -0.5)]; a ValueError names an
    empty sub-prompt, or weights that sum to no pull toward anything."""
    out = []
    for part in prompt.split("|"):
        found = _WEIGHT.match(part.strip())
        text, weight = (found["text"], float(found["weight"])) if found else (part.strip(), 1.0)
        if not text.strip():
            raise ValueError(f"prompt {prompt!r} has an empty sub-prompt; write text between "
                             "every '|' (and before each ':weight')")  # fmt: skip
        if not math.isfinite(weight):
            raise ValueError(f"prompt weight must be finite, got {weight}")
        out.append((text.strip(), weight))
    if not any(w > 0 for _, w in out):
        raise ValueError(f"prompt {prompt!r} has no positive weight: give at least one "
                         "sub-prompt to move toward")  # fmt: skip
    return out


@dataclass(frozen=True)
class VQGANCLIPOptions:
    """Iterations, Adam's step size, cutouts, the pull toward the start, and filmstrip frames."""

    iterations: int = 150
    lr: float = 0.1  # the notebooks' step_size
    cutouts: CutoutOptions = field(default_factory=lambda: CutoutOptions(count=16))
    init_weight: float = 0.0
    frames: int = 8  # filmstrip frames, the last one the result

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) \
                or self.iterations < 1:  # fmt: skip
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.init_weight) and self.init_weight >= 0):
            raise ValueError(f"init_weight must be a number >= 0, got {self.init_weight!r}")
        if self.frames < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames!r}")


@dataclass(frozen=True)
class VQGANCLIPResult:
    """The image, the filmstrip's frames (in order, the last the image) with the step each
    was taken after (0-based), the loss per step and the image's codes (h, w): a token model
    could draw it."""

    image: Image.Image
    frames: list[Image.Image]
    losses: list[float]
    codes: torch.Tensor
    frame_steps: list[int]


class VQGANCLIP:
    """``VQGANCLIP(tokenizer, clip, resolution)(prompt, seed=...) -> VQGANCLIPResult``.

    ``tokenizer`` is an :class:`~atelier.models.tokenizer.ImageTokenizer`, ``clip`` anything with
    ``encode_image``, ``encode_text`` and ``image_size``; images are ``resolution`` px.
    """

    def __init__(self, tokenizer, clip, resolution: int) -> None:
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.clip = clip
        self.resolution = resolution
        f = tokenizer.config.downsampling_factor
        if resolution % f:
            raise ValueError(f"resolution {resolution} is not a multiple of the tokenizer's f={f}")
        self.grid = resolution // f
        codebook = tokenizer.quantizer.codebook.detach().float()  # (K, D)
        self.z_min, self.z_max = codebook.min(0).values, codebook.max(0).values  # (D,)

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """z_q = z + sg(e_c - z): the nearest codes forward, the identity backward."""
        e_c = self.tokenizer.quantizer.embed(self.tokenizer.quantizer.codes(z))
        return z + (e_c - z).detach()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) of a grid, quantised, clamped to [-1, 1] straight-through."""
        x = self.tokenizer.decoder(self.quantise(z))
        return x + (x.clamp(-1, 1) - x).detach()

    def start(self, generator: torch.Generator, init: torch.Tensor | None) -> torch.Tensor:
        """z at iteration 0: random codes' embeddings, or the encoder's output for ``init``
        (3, H, W) in [-1, 1]."""
        if init is not None:
            if init.shape != (3, self.resolution, self.resolution):
                raise ValueError(f"the init image must be 3 x {self.resolution} x "
                                 f"{self.resolution}, got {tuple(init.shape)}")  # fmt: skip
            with torch.no_grad():
                return self.tokenizer.encoder(init[None].float()).float()
        k = self.tokenizer.config.codebook_size
        codes = torch.randint(k, (1, self.grid, self.grid), generator=generator)
        return self.tokenizer.quantizer.embed(codes)

    def loss(self, z: torch.Tensor, z_init: torch.Tensor, targets: torch.Tensor,
             weights: torch.Tensor, cutouts: CutoutOptions, init_weight: float,
             generator: torch.Generator) -> torch.Tensor:  # fmt: skip
        """L of the grid z (1, D, h, w) (module docstring)."""
        image = self.decode(z)[0]
        options = CLIPGuidanceOptions(scale=1.0, cutouts=cutouts, range_scale=0.0)
        loss = clip_loss(image, embed=self.clip.encode_image, cut_size=self.clip.image_size,
                         targets=targets, weights=weights, options=options,
                         generator=generator)  # fmt: skip
        if init_weight:
            loss = loss + init_weight * F.mse_loss(z, z_init)
        return loss

    def __call__(
        self,
        prompt: str,
        *,
        seed: int,
        init: torch.Tensor | None = None,
        options: VQGANCLIPOptions = VQGANCLIPOptions(),
        callback: Callable[[int, int, float], None] | None = None,
    ) -> VQGANCLIPResult:
        """Optimise one image; ``callback(i, total, loss)`` after every iteration."""
        parts = parse_weighted_prompts(prompt)
        with torch.no_grad():
            targets = torch.stack([self.clip.encode_text([text])[0] for text, _ in parts])
        weights = torch.tensor([w for _, w in parts])
        generator = torch.Generator().manual_seed(int(seed))
        z_init = self.start(generator, init)
        z = z_init.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=options.lr)
        keep = {round(i * (options.iterations - 1) / max(options.frames - 1, 1))
                for i in range(options.frames)} if options.frames > 1 else set()  # fmt: skip
        frames, steps, losses = [], [], []
        lo, hi = self.z_min.view(1, -1, 1, 1), self.z_max.view(1, -1, 1, 1)
        for i in range(options.iterations):
            with torch.enable_grad():
                loss = self.loss(z, z_init, targets, weights, options.cutouts,
                                 options.init_weight, generator)  # fmt: skip
                optimizer.zero_grad()
                loss.backward()
            optimizer.step()
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, hi), lo))
            losses.append(float(loss.detach()))
            if i in keep and i != options.iterations - 1:
                frames.append(self._image(z))
                steps.append(i)
            if callback is not None:
                callback(i, options.iterations, losses[-1])
        image = self._image(z)
        codes = self.tokenizer.quantizer.codes(z.detach())[0]
        last = options.iterations - 1
        return VQGANCLIPResult(image, frames + [image], losses, codes, steps + [last])

    @torch.no_grad()
    def _image(self, z: torch.Tensor) -> Image.Image:
        return tensor_to_pil(self.decode(z)[0])
