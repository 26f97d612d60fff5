"""Inpainting masks: a PNG in which white means repaint, and the images they go with.

Behaviour at the edges, all documented here and raised with the fix named:
- a mask whose size differs from its image is an error (resize one of them);
- an empty mask (nothing white) is an error: there is nothing to repaint;
- a full mask (everything white) is allowed and is text-to-image at that size;
- any image mode is converted (transparency over white); sizes must suit the model.
``grow`` dilates the repaint region by whole pixels, ``feather`` softens its edge with a
Gaussian of that many pixels; the final image takes the original pixels wherever the
feathered mask is 0, so nothing outside it changes. Outpainting is inpainting of a grown
canvas whose new border is the mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from atelier.data.images import to_rgb

# What outpainting pads the canvas with: the shapes world's background.
BACKGROUND = (255, 255, 255)


def prepare_image(image: Image.Image, *, multiple: int) -> Image.Image:
    """RGB version of ``image``; its sides must be multiples of ``multiple`` (the model's
    stride), else a ValueError names the nearest size that works."""
    rgb = to_rgb(image)
    w, h = rgb.size
    if w % multiple or h % multiple or w < multiple or h < multiple:
        fix_w = max(multiple, round(w / multiple) * multiple)
        fix_h = max(multiple, round(h / multiple) * multiple)
        raise ValueError(
            f"the image is {w}x{h}; this model needs sides that are multiples of {multiple}: "
            f"resize it, e.g. to {fix_w}x{fix_h}"
        )
    return rgb


def repaint_pixels(mask: Image.Image) -> np.ndarray:
    """(H, W) bool, True where ``mask`` asks for repainting: white, or any grey of 128 and up."""
    return np.asarray(to_rgb(mask).convert("L")) >= 128


def prepare_mask(
    mask: Image.Image, image: Image.Image, *, grow: int = 0, feather: float = 0.0
) -> np.ndarray:
    """(H, W) float mask in [0, 1], 1 = repaint, grown and feathered; checked against ``image``."""
    if mask.size != image.size:
        raise ValueError(
            f"the mask is {mask.size[0]}x{mask.size[1]} but the image is "
            f"{image.size[0]}x{image.size[1]}; give a mask of the image's size"
        )
    if grow < 0 or feather < 0:
        raise ValueError("grow and feather must be >= 0")
    binary = repaint_pixels(mask)
    if not binary.any():
        raise ValueError("the mask is empty: paint the area to repaint white (white = repaint)")
    if grow:
        grown = Image.fromarray((binary * 255).astype(np.uint8)).filter(
            ImageFilter.MaxFilter(2 * grow + 1)
        )
        binary = np.asarray(grown) >= 128
    soft = binary.astype(np.float32)
    if feather:
        blurred = Image.fromarray((soft * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(feather)
        )
        # Feather outwards only: the painted region stays fully repainted.
        soft = np.maximum(soft, np.asarray(blurred, dtype=np.float32) / 255)
    return soft


def latent_keep_mask(repaint: np.ndarray, factor: int) -> torch.Tensor:
    """(1, 1, H / f, W / f) keep mask: a latent pixel is known only if none of its f x f image
    pixels is to be repainted at all."""
    m = torch.from_numpy(np.ascontiguousarray(repaint, dtype=np.float32))[None, None]
    touched = F.max_pool2d(m, factor) if factor > 1 else m
    return (touched == 0).float()


def composite(generated: Image.Image, original: Image.Image, repaint: np.ndarray) -> Image.Image:
    """``generated`` where the mask is 1, ``original`` where it is 0, blended between."""
    g = np.asarray(generated.convert("RGB"), dtype=np.float32)
    o = np.asarray(original.convert("RGB"), dtype=np.float32)
    a = repaint[..., None]
    return Image.fromarray(np.clip(np.rint(a * g + (1 - a) * o), 0, 255).astype(np.uint8))


def check_pads(left: int, right: int, top: int, bottom: int) -> None:
    """A ValueError unless every pad is >= 0 and one is > 0."""
    pads = (left, right, top, bottom)
    if min(pads) < 0 or not any(pads):
        raise ValueError("outpainting needs at least one side to grow by a positive amount")


def outpaint_canvas(
    image: Image.Image, *, left: int, right: int, top: int, bottom: int
) -> tuple[Image.Image, Image.Image]:
    """``image`` (RGB) on a canvas grown by the given pixels per side and filled with
    :data:`BACKGROUND`, and the mask repainting exactly the new border."""
    check_pads(left, right, top, bottom)
    rgb = image.convert("RGB")
    w, h = rgb.width + left + right, rgb.height + top + bottom
    canvas = Image.new("RGB", (w, h), BACKGROUND)
    canvas.paste(rgb, (left, top))
    mask = Image.new("L", (w, h), 255)
    mask.paste(0, (left, top, left + rgb.width, top + rgb.height))
    return canvas, mask
