"""``atelier explain``: how one prompt's image came to be, step by step, as a filmstrip and an
animation.

A diffusion model's reverse process: after every sampler step the callback sees the current
latent x (VE form, x = x_0 + sigma eps) and the x_0 estimate the step used. Each is decoded to
pixels: x scaled back to the VP form x / sqrt(1 + sigma^2), which is what the network saw, so
early frames show noise; x_0 shows what the model believes the finished image will be at that
moment. A token model's grid filling in is ``eval/token_filling.py``'s; both give columns the
same filmstrip lays out, each over a caption naming its step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from atelier.atomic import write_atomic
from atelier.data.base import tensor_to_array
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.samplers import StepInfo
from atelier.eval.grid import Tile, labelled_grid
from atelier.pipelines.text2image import Text2Image

# A filmstrip wraps after this many frames: 40 steps make 4 rows, not one 5,120 px strip.
FILMSTRIP_COLS = 10


class Column(Protocol):
    """One step of a filmstrip: its pictures top to bottom and the lines captioning them."""

    @property
    def tiles(self) -> tuple[np.ndarray, ...]: ...  # each (H, W, 3) uint8

    @property
    def caption(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Frame:
    """One sampler step: its index of ``total``, the noise level it reached, the image x_t there
    and the x_0 the step predicted."""

    step: int
    total: int
    sigma: float
    x_t: np.ndarray  # (H, W, 3) uint8
    x_0: np.ndarray  # (H, W, 3) uint8

    @property
    def tiles(self) -> tuple[np.ndarray, ...]:
        return (self.x_t, self.x_0)

    @property
    def caption(self) -> tuple[str, ...]:
        return (f"step {self.step + 1}/{self.total}", f"sigma {self.sigma:.3g}")


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
            frames.append(Frame(info.i, info.total, info.sigma_next, x_t, x_0))
    return image, frames


def filmstrip(
    frames: Sequence[Column],
    *,
    scale: int = 2,
    cols: int = FILMSTRIP_COLS,
    title: str | None = None,
) -> Image.Image:
    """The frames in rows of at most ``cols``, left to right: a frame's tiles top to bottom
    (for diffusion x_t above x_0), each enlarged ``scale`` times with nearest-neighbour
    resampling, over its caption naming its step; ``title`` on top (``eval/grid.py`` lays
    them out)."""
    tiles = [Tile(np.concatenate(f.tiles, axis=0), tuple(f.caption)) for f in frames]
    return labelled_grid(tiles, cols=min(cols, len(tiles)), scale=scale, title=title)


def save_explanation(
    frames: Sequence[Column],
    out: Path,
    stem: str,
    *,
    scale: int = 4,
    ms_per_frame: int = 250,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Write ``stem``-filmstrip.png (``title`` on top) and ``stem``.gif (a frame's tiles side
    by side, x_t beside x_0 for diffusion) atomically."""
    import io

    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    filmstrip(frames, scale=2, title=title).save(buffer, format="PNG")
    strip_path = out / f"{stem}-filmstrip.png"
    write_atomic(strip_path, buffer.getvalue())
    tiles = [Image.fromarray(np.concatenate(f.tiles, axis=1)) for f in frames]
    tiles = [t.resize((t.width * scale, t.height * scale), Image.NEAREST) for t in tiles]
    buffer = io.BytesIO()
    tiles[0].save(
        buffer, format="GIF", save_all=True, append_images=tiles[1:] + [tiles[-1]] * 4,
        duration=ms_per_frame, loop=0,
    )  # fmt: skip
    gif_path = out / f"{stem}.gif"
    write_atomic(gif_path, buffer.getvalue())
    return strip_path, gif_path
