"""``atelier explain`` for a token model: its grid of image tokens filling in, step by step.

Notation (``tokens/``): a g x g grid of n = g^2 tokens, each one of K codes and each drawn as an
f x f cell of pixels (f the image tokenizer's downsampling factor). After every step the
pipeline's callback sees the tokens so far: DALL-E's prefix c_0 .. c_i (the tokens after it are
unknown), MaskGIT's whole grid holding the mask token K where unknown. A frame decodes the grid
through the image tokenizer with code 0 standing in for each unknown token, then paints every
unknown token's cell as a grey checker, so a reader sees which tokens are decided. The decoder's
receptive field lets a stand-in code tint a few pixels of known neighbours: the checker marks
cells still undecided, not pixels that are final.

DALL-E decides one token per step, so a frame is kept every n/16-th step (16 frames); MaskGIT
decides many per step and keeps every one (every steps/16-th past 31 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from atelier.data.base import tensor_to_array
from atelier.pipelines.token2image import TokenPipeline
from atelier.tokens.autoregressive import TokenStep
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions

# Two mid greys: neutral against any colour a model draws, and told apart from a flat grey
# region the model itself might paint.
CHECKER = (112, 144)


@dataclass(frozen=True)
class TokenFrame:
    """The grid after step ``step`` of ``total``: decoded, its unknown tokens' cells a grey
    checker."""

    step: int
    total: int
    image: np.ndarray  # (H, W, 3) uint8
    unknown: np.ndarray  # (g, g) bool: True where the token is not decided yet

    @property
    def tiles(self) -> tuple[np.ndarray, ...]:
        return (self.image,)

    @property
    def caption(self) -> tuple[str, ...]:
        known = self.unknown.size - int(self.unknown.sum())
        return (f"step {self.step + 1}/{self.total}", f"{known}/{self.unknown.size} known")


def unknown_tokens(tokens: torch.Tensor, *, image_length: int, codebook_size: int) -> torch.Tensor:
    """The first ``k`` tokens (k,) of a grid of n = ``image_length`` -> (n,) bool, True where
    unknown: past the prefix (DALL-E), or not a code of the codebook (MaskGIT's mask token K)."""
    unknown = torch.ones(image_length, dtype=torch.bool)
    unknown[: len(tokens)] = (tokens < 0) | (tokens >= codebook_size)
    return unknown


def checkered(image: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) with the cell of every True of the (g, g) grid ``unknown`` painted as
    a 2 x 2 checker of :data:`CHECKER` greys, one per token so the grid's cells show."""
    f = image.shape[0] // unknown.shape[0]
    side = max(1, f // 2)
    y, x = np.indices(image.shape[:2])  # (H, W) each
    checker = np.where((y // side + x // side) % 2 == 0, *CHECKER).astype(np.uint8)
    cells = np.kron(unknown, np.ones((f, f), dtype=bool))  # (H, W)
    out = image.copy()
    out[cells] = checker[cells, None]
    return out


def token_filling(
    pipe: TokenPipeline,
    prompt: str,
    *,
    seed: int,
    options: AutoregressiveOptions | MaskedOptions,
    frames: int = 16,
) -> tuple[Image.Image, list[TokenFrame]]:
    """The final image and a :class:`TokenFrame` every ``total // frames``-th step (at least
    every step) and at the last, where every token is known."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    captured: list[TokenStep] = []

    def keep(step: TokenStep) -> None:
        every = max(1, step.total // frames)
        if (step.i + 1) % every == 0 or step.i + 1 == step.total:
            # Row 0 is this prompt's; the pipeline pads its batch with rows of its own.
            captured.append(TokenStep(step.i, step.total, step.tokens[0].cpu().clone()))

    image = pipe([prompt], seeds=[seed], options=options, callback=keep)[0]
    config = pipe.network.config
    g, n, K = config.grid, config.image_length, config.codebook_size
    unknown = torch.stack(
        [unknown_tokens(s.tokens, image_length=n, codebook_size=K) for s in captured]
    )  # (F, n)
    codes = torch.zeros(len(captured), n, dtype=torch.long)
    for k, s in enumerate(captured):
        codes[k, : len(s.tokens)] = s.tokens
    codes = codes.masked_fill(unknown, 0)  # a stand-in the checker will cover
    pixels = pipe.decode(codes.view(-1, g, g).to(pipe.device))  # (F, 3, H, W) in [-1, 1]
    out = []
    for s, mask, x in zip(captured, unknown, pixels):
        grid = mask.view(g, g).numpy()
        out.append(TokenFrame(s.i, s.total, checkered(tensor_to_array(x), grid), grid))
    return image, out
