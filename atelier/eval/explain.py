"""``atelier explain``: the reverse process of one prompt as a filmstrip and an animation.

After every sampler step the callback sees the current latent x (VE form, x = x_0 + sigma eps)
and the x_0 estimate the step used. Each is decoded to pixels: x scaled back to the VP form
x / sqrt(1 + sigma^2), which is what the network saw, so early frames show noise; x_0 shows
what the model believes the finished image will be at that moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atelier.atomic import write_atomic
from atelier.data.base import tensor_to_array
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.samplers import StepInfo
from atelier.pipelines.text2image import Text2Image


@dataclass(frozen=True)
class Frame:
    """One step: its index, the noise level it reached, the image x_t there and the x_0 the
    step predicted."""

    step: int
    sigma: float
    x_t: np.ndarray  # (H, W, 3) uint8
    x_0: np.ndarray  # (H, W, 3) uint8


def reverse_process(
    pipe: Text2Image, prompt: str, *, seed: int, options: SamplingOptions
) -> tuple[Image.Image, list[Frame]]:
    """The final image and one :class:`Frame` per sampler step."""
    captured: list[StepInfo] = []
    image = pipe([prompt], seeds=[seed], options=options, callback=captured.append)[0]
    frames = []
    with torch.no_grad():
        for info in captured:
            vp = info.x / math.sqrt(1 + info.sigma_next**2)  # x after the step, at sigma_next
            pixels = pipe.decode(torch.cat([vp, info.denoised]))  # (2, 3, H, W) in [-1, 1]
            x_t, x_0 = tensor_to_array(pixels[0]), tensor_to_array(pixels[1])
            frames.append(Frame(info.i, info.sigma_next, x_t, x_0))
    return image, frames


def filmstrip(frames: list[Frame], *, scale: int = 2) -> Image.Image:
    """Two rows, x_t above x_0, one column per step, each tile enlarged ``scale`` times."""
    top = np.concatenate([f.x_t for f in frames], axis=1)
    bottom = np.concatenate([f.x_0 for f in frames], axis=1)
    strip = Image.fromarray(np.concatenate([top, bottom], axis=0))
    return strip.resize((strip.width * scale, strip.height * scale), Image.NEAREST)


def save_explanation(
    frames: list[Frame], out: Path, stem: str, *, scale: int = 4, ms_per_frame: int = 250
) -> tuple[Path, Path]:
    """Write ``stem``-filmstrip.png and ``stem``.gif (x_t beside x_0 per frame) atomically."""
    import io

    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    filmstrip(frames, scale=2).save(buffer, format="PNG")
    strip_path = out / f"{stem}-filmstrip.png"
    write_atomic(strip_path, buffer.getvalue())
    tiles = [Image.fromarray(np.concatenate([f.x_t, f.x_0], axis=1)) for f in frames]
    tiles = [t.resize((t.width * scale, t.height * scale), Image.NEAREST) for t in tiles]
    buffer = io.BytesIO()
    tiles[0].save(
        buffer, format="GIF", save_all=True, append_images=tiles[1:] + [tiles[-1]] * 4,
        duration=ms_per_frame, loop=0,
    )  # fmt: skip
    gif_path = out / f"{stem}.gif"
    write_atomic(gif_path, buffer.getvalue())
    return strip_path, gif_path
