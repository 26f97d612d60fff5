"""Labelled grids: every picture of many images that atelier writes (``make demo``'s grid, an
eval's and a sweep's, the arena's pairs, ``explain``'s and ``vqgan-clip``'s filmstrips, the
samples a training run saves) is laid out here, so that a reader can tell which tile is which.

Each :class:`Tile` is enlarged by an integer factor with nearest-neighbour resampling (a 64 px
tile stays sharp and becomes visible), may be framed green or red for a judge's pass or fail,
and has its caption lines (prompt, verdict or metric, step) under it, word-wrapped to its
width. Rows may carry a label on the left and the grid a title on top, as AUTOMATIC1111's X/Y
plots label theirs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Tiles are enlarged to at least this side, by a whole factor of at most MAX_SCALE.
MIN_SIDE = 128
MAX_SCALE = 8
FONT_SIZE = 12
PAD = 4
FRAME = 3  # the pass / fail frame's width, in output pixels
PASS_COLOUR, FAIL_COLOUR = (30, 150, 60), (200, 30, 40)
INK, MUTED, PAPER = (20, 20, 20), (90, 90, 90), (255, 255, 255)


@dataclass(frozen=True)
class Tile:
    """One picture of a grid: ``image`` ((H, W, 3) uint8 or PIL), the ``caption`` lines under
    it, and ``passed``: a judge's verdict (a green or red frame), or None for no frame."""

    image: np.ndarray | Image.Image
    caption: tuple[str, ...] = ()
    passed: bool | None = None


def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The grid's font: Pillow's own (no system font needed), at :data:`FONT_SIZE`."""
    return ImageFont.load_default(size=FONT_SIZE)


def line_height(face) -> int:
    """Pixels from one caption line to the next."""
    return face.getbbox("Ag")[3] + 3


def title_height() -> int:
    """Pixels a grid's title takes above its first row."""
    return line_height(font()) + 2 * PAD


def auto_scale(side: int) -> int:
    """The whole factor that enlarges a tile of ``side`` pixels to at least :data:`MIN_SIDE`
    (1 for tiles that are already that large), at most :data:`MAX_SCALE`."""
    return max(1, min(MAX_SCALE, math.ceil(MIN_SIDE / max(side, 1))))


def wrap(text: str, width: float, face) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a single word wider
    than that stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _rgb(image: np.ndarray | Image.Image) -> Image.Image:
    return image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(image)


def labelled_grid(
    tiles: Sequence[Tile],
    *,
    cols: int,
    scale: int | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Image.Image:
    """``tiles`` in rows of ``cols``, each enlarged ``scale`` times (None: :func:`auto_scale`
    of the largest tile) over its caption; ``row_labels`` (one per row, "\\n" breaks lines)
    on the left, ``title`` on top. Every cell has the size of the largest."""
    if not tiles:
        raise ValueError("a grid needs at least one tile")
    if cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}")
    rows = math.ceil(len(tiles) / cols)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    face = font()
    line = line_height(face)
    images = [_rgb(t.image) for t in tiles]
    side = max(max(im.size) for im in images)
    scale = auto_scale(side) if scale is None else scale
    framed = any(t.passed is not None for t in tiles)
    edge = FRAME if framed else 0
    picture_w = max(im.width for im in images) * scale + 2 * edge
    picture_h = max(im.height for im in images) * scale + 2 * edge
    cell_w = max(picture_w, 96) + 2 * PAD
    # The first caption line (the prompt, say) in ink, the others (verdict, metric) muted.
    captions = [[(piece, INK if n == 0 else MUTED) for n, text in enumerate(t.caption)
                 for piece in wrap(text, cell_w - 2 * PAD, face)] for t in tiles]  # fmt: skip
    caption_h = max(len(c) for c in captions) * line
    cell_h = picture_h + caption_h + 3 * PAD

    labels = [label.split("\n") for label in row_labels] if row_labels is not None else []
    label_w = max((face.getlength(s) for label in labels for s in label), default=0)
    left = math.ceil(label_w) + 2 * PAD if labels else 0
    top = title_height() if title else 0
    width, height = left + cols * cell_w, top + rows * cell_h
    canvas = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, PAD), title, fill=INK, font=face)
    for r, label in enumerate(labels):
        for j, text in enumerate(label):
            draw.text((PAD, top + r * cell_h + PAD + j * line), text, fill=INK, font=face)
    for k, (tile, image, caption) in enumerate(zip(tiles, images, captions)):
        r, c = divmod(k, cols)
        x, y = left + c * cell_w + PAD, top + r * cell_h + PAD
        big = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        if tile.passed is not None:
            colour = PASS_COLOUR if tile.passed else FAIL_COLOUR
            draw.rectangle([x, y, x + big.width + 2 * edge - 1, y + big.height + 2 * edge - 1],
                           fill=colour)  # fmt: skip
        canvas.paste(big, (x + edge, y + edge))
        for j, (text, ink) in enumerate(caption):
            draw.text((x, y + picture_h + PAD + j * line), text, fill=ink, font=face)
    return canvas


def save_grid(
    images: Sequence[np.ndarray | Image.Image],
    path: Path,
    *,
    captions: Sequence[str] | None = None,
    cols: int = 8,
    title: str | None = None,
) -> None:
    """``images`` as a labelled grid PNG at ``path`` (its folder made), each under its caption
    (a training run's sample prompts, say), in rows of at most ``cols``."""
    if not images:
        return
    texts = captions if captions is not None else [""] * len(images)
    tiles = [Tile(image, (text,) if text else ()) for image, text in zip(images, texts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(tiles, cols=min(cols, len(tiles)), title=title).save(path)
