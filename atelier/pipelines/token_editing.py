"""Inpainting and outpainting with a token model (DALL-E, MaskGIT): the tokens of the region to
repaint are masked and drawn again, the others are the image's own. Assembly only.

Notation: f the image tokenizer's downsampling factor, a g x g grid of tokens, S = f g the one
image side the model makes (its grid is fixed, so an image of another size is refused, naming
the size to resize or pad to).

1. the image's codes k (g, g), from the tokenizer's encoder;
2. the keep mask: a token is kept only if none of its f x f pixels is to be repainted under the
   grown and feathered mask (``masks.latent_keep_mask``), so a mask edge or an outpainting pad
   that is not a multiple of f repaints the tokens it cuts;
3. the other tokens drawn with the kept ones known (``token2image.py``: MaskGIT masks only
   them; DALL-E teacher-forces the kept ones in row-major order, its image completion, so a
   drawn token sees the known tokens before it and not those after it);
4. the tokens decoded and composited over the image, so that every pixel the mask leaves at 0
   is the input's exactly (a kept token decodes to the tokenizer's reconstruction, which the
   original replaces).

A full mask keeps no token: text-to-image at the same seed. Outpainting pads the image to S x S
(``masks.outpaint_canvas``) and inpaints the new border.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from atelier.data.base import array_to_tensor, tensor_to_pil
from atelier.pipelines.masks import (
    check_pads,
    composite,
    latent_keep_mask,
    outpaint_canvas,
    prepare_image,
    prepare_mask,
)
from atelier.pipelines.token2image import TokenPipeline
from atelier.tokens.autoregressive import TokenCallback
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions

TokenOptions = AutoregressiveOptions | MaskedOptions
FIXED = "its grid of tokens is fixed"


class TokenEditor:
    """The inpainting and outpainting of one :class:`TokenPipeline`."""

    def __init__(self, pipe: TokenPipeline) -> None:
        self.pipe = pipe

    @property
    def factor(self) -> int:
        """f: image pixels per token side."""
        return self.pipe.image_tokenizer.config.downsampling_factor

    @property
    def resolution(self) -> int:
        """S: the one image side the model makes."""
        return self.pipe.network.config.grid * self.factor

    def check_image(self, width: int, height: int) -> None:
        """A ValueError naming the size to resize to, unless an image of ``width`` x ``height``
        is the model's size."""
        s = self.resolution
        if (width, height) != (s, s):
            raise ValueError(f"the image is {width}x{height} but this token model edits {s}x{s} "
                             f"px images only ({FIXED}): resize it to {s}x{s}")  # fmt: skip

    def check_outpaint(
        self, width: int, height: int, *, left: int, right: int, top: int, bottom: int
    ) -> None:
        """A ValueError naming the padding that would fit, unless an image of ``width`` x
        ``height`` padded by these pixels per side is the model's size."""
        check_pads(left, right, top, bottom)
        s = self.resolution
        w, h = width + left + right, height + top + bottom
        if (w, h) == (s, s):
            return
        if width > s or height > s:
            raise ValueError(f"the image is {width}x{height}, larger than the {s}x{s} px this "
                             f"token model makes ({FIXED}): resize it smaller first")  # fmt: skip
        if (width, height) == (s, s):
            raise ValueError(f"the image is already {s}x{s}, the only size this token model "
                             f"makes ({FIXED}): there is no room to outpaint; shrink it first, "
                             "or inpaint it")  # fmt: skip
        raise ValueError(
            f"the outpainted image would be {w}x{h} but this token model makes {s}x{s} px "
            f"images only ({FIXED}): for this {width}x{height} image, left + right must add up "
            f"to {s - width} and top + bottom to {s - height}"
        )

    def known_tokens(
        self, images: Sequence[Image.Image], repaint: Sequence[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes k (B, g, g) of RGB ``images`` of the model's size, and which of them are
        kept (B, g, g, bool) under the (H, W) repaint masks."""
        x = torch.stack([array_to_tensor(np.asarray(im)) for im in images])  # (B, 3, S, S)
        codes = self.pipe.encode(x)
        keep = torch.cat([latent_keep_mask(r, self.factor) for r in repaint])[:, 0] > 0
        return codes, keep.to(codes.device)

    def inpaint(
        self,
        images: Sequence[Image.Image],
        masks: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        grow: int = 0,
        feather: float = 0.0,
        negative_prompt: str = "",
        options: TokenOptions,
        callback: TokenCallback | None = None,
    ) -> list[Image.Image]:
        """Repaint the white of each mask under its prompt (the whole picture's caption);
        every pixel outside the grown, feathered mask stays the image's."""
        if not len(images) == len(masks) == len(prompts):
            raise ValueError("give one mask and one prompt per image")
        if not images:
            return []
        for image in images:
            self.check_image(*image.size)
        rgb = [prepare_image(im, multiple=self.factor) for im in images]
        repaint = [prepare_mask(m, im, grow=grow, feather=feather) for m, im in zip(masks, rgb)]
        known, keep = self.known_tokens(rgb, repaint)
        codes = self.pipe.sample(prompts, seeds=seeds, negative_prompt=negative_prompt,
                                 options=options, callback=callback, known=known,
                                 keep=keep)  # fmt: skip
        drawn = [tensor_to_pil(x) for x in self.pipe.decode(codes)]
        return [composite(d, o, r) for d, o, r in zip(drawn, rgb, repaint)]

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
        options: TokenOptions,
        callback: TokenCallback | None = None,
    ) -> Image.Image:
        """Pad ``image`` by these pixels per side to the model's size and paint the new area;
        the image itself stays as it was."""
        self.check_outpaint(image.width, image.height, left=left, right=right, top=top,
                            bottom=bottom)  # fmt: skip
        canvas, mask = outpaint_canvas(image, left=left, right=right, top=top, bottom=bottom)
        return self.inpaint([canvas], [mask], [prompt], seeds=[seed], feather=feather,
                            negative_prompt=negative_prompt, options=options,
                            callback=callback)[0]  # fmt: skip
