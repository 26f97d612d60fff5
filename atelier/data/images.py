"""Turn image files found in the wild into the data contract, skipping what cannot be used.

Real folders hold zero-byte files, half-copied JPEGs, CMYK scans, palette PNGs with a transparent
colour, 16-bit grayscale and phone photos stored sideways. :func:`load_rgb` decodes one image to
upright 8-bit RGB or raises :class:`ImageRejected` with a :data:`SkipReason`; :func:`square_pixels`
resizes and center-crops it. :class:`ScannedImages` is the base of every file-backed dataset: it
decodes every entry once at construction, keeps the good ones, records what it skipped or
converted in a :class:`LoadReport`, and warns once, so one bad file never stops a training run.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from atelier.data.base import array_to_tensor

SkipReason = Literal[
    "missing_file", "empty", "unreadable", "truncated", "too_large", "missing_caption",
    "bad_metadata",
]  # fmt: skip
SKIP_REASONS: dict[SkipReason, str] = {
    "missing_file": "image file or data missing",
    "empty": "zero-byte file",
    "unreadable": "not an image in a supported format",
    "truncated": "truncated or corrupt image data",
    "too_large": "more pixels than max_pixels (decompression-bomb guard)",
    "missing_caption": "no caption, an empty one, or a caption file that is not UTF-8 text",
    "bad_metadata": "malformed metadata line",
}
# The formats cameras, browsers and dataset tools write. Others stay out on purpose: EPS and PDF
# would run external programs and the rest are rare enough to be a mistake in a training folder.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
# 8192 x 8192; below PIL's own limit (Image.MAX_IMAGE_PIXELS), which still applies on top of it.
DEFAULT_MAX_PIXELS = 8192 * 8192
# Caption columns / metadata keys, in order of preference, when none is named.
CAPTION_KEYS = ("text", "caption")
_NAMES_SHOWN = 20
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}

ImageSource = Path | bytes


class ImageRejected(Exception):
    """An image that cannot be used, with the reason it was skipped."""

    def __init__(self, reason: SkipReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: SkipReason = reason


class ImageLoadWarning(UserWarning):
    """Some images of a dataset were skipped or converted; the message lists which."""


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    hidden = len(names) - _NAMES_SHOWN
    return f"{shown} and {hidden} more" if hidden > 0 else shown


@dataclass
class LoadReport:
    """What a dataset scan skipped (by reason) and converted to 8-bit RGB (by source mode)."""

    skipped: dict[SkipReason, list[str]] = field(default_factory=dict)
    converted: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: SkipReason, name: str) -> None:
        """Record that item ``name`` was left out for ``reason``."""
        self.skipped.setdefault(reason, []).append(name)

    def convert(self, mode: str, name: str) -> None:
        """Record that item ``name`` was converted to RGB from PIL mode ``mode``."""
        self.converted.setdefault(mode, []).append(name)

    @property
    def num_skipped(self) -> int:
        """Number of items left out."""
        return sum(len(names) for names in self.skipped.values())

    @property
    def num_converted(self) -> int:
        """Number of kept items that were not 8-bit RGB."""
        return sum(len(names) for names in self.converted.values())

    def summary(self) -> str:
        """One line per reason and per converted mode, each with its count and file names."""
        lines = [
            f"skipped {len(names)} ({SKIP_REASONS[reason]}): {_names(names)}"
            for reason, names in self.skipped.items()
        ]
        lines += [
            f"converted {len(names)} from {mode} to RGB: {_names(names)}"
            for mode, names in self.converted.items()
        ]
        return "\n".join(lines)


def clean_caption(value: object) -> str | None:
    """A usable caption: the stripped string, or None if ``value`` is not a non-blank string."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise ImageRejected("empty")
        return Image.open(io.BytesIO(source), formats=IMAGE_FORMATS)
    try:
        if os.path.getsize(source) == 0:
            raise ImageRejected("empty", str(source))
    except OSError as error:
        raise ImageRejected("missing_file", str(error)) from error
    return Image.open(source, formats=IMAGE_FORMATS)


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit grayscale to 8 bits by value range; ``convert("L")`` would clip at 255."""
    values = np.asarray(image, dtype=np.float64)
    low, high = values.min(), values.max()
    # Scale by the format's range, not the image's min/max, wherever the format has one: that
    # keeps a dark photo dark. 16-bit PNGs decode as "I;16", or as "I" in older PIL.
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 65535.0 * 255.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif high > low:
        scaled = (values - low) / (high - low) * 255.0
    else:
        scaled = np.zeros_like(values)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: transparency composited over white, high bit depth rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return _high_bit_depth_to_rgb(image)
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        # White, not black: transparent areas of icons and cut-outs are meant to show the page.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(
    source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image, str | None]:
    """Decode ``source`` (a file path or encoded bytes) to an upright 8-bit RGB image.

    Returns the image and the PIL mode it was converted from, or None if it already was RGB.
    Raises :class:`ImageRejected` naming the :data:`SkipReason` if it cannot be used.
    """
    try:
        with _open(source) as image:
            width, height = image.size
            # The header gives the size before any pixel is decoded, so a bomb costs nothing.
            if width * height > max_pixels:
                raise ImageRejected("too_large", f"{width}x{height} > {max_pixels} pixels")
            image.load()
            upright = ImageOps.exif_transpose(image)
            mode = upright.mode
            return to_rgb(upright), (None if mode == "RGB" else mode)
    except Image.DecompressionBombError as error:
        raise ImageRejected("too_large", str(error)) from error
    except UnidentifiedImageError as error:
        raise ImageRejected("unreadable", str(error)) from error
    except OSError as error:
        # With an errno the OS refused (permissions, a folder named like an image); without one,
        # PIL recognised the format and then ran out of, or choked on, its data.
        reason: SkipReason = "unreadable" if error.errno is not None else "truncated"
        raise ImageRejected(reason, str(error)) from error
    except (SyntaxError, ValueError, KeyError, IndexError) as error:
        raise ImageRejected("truncated", str(error)) from error


def square_pixels(image: Image.Image, resolution: int) -> np.ndarray:
    """Resize the shorter side to ``resolution`` and center-crop: (R, R, 3) uint8.

    No random flip: it would turn "a circle left of a square" into a false caption.
    """
    width, height = image.size
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    # reducing_gap first shrinks by an integer factor (fast, box filter), then LANCZOS finishes;
    # at 3.0 the result is indistinguishable from LANCZOS alone.
    square = image.resize(
        (resolution, resolution), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0
    )
    return np.array(square, dtype=np.uint8)


@dataclass(frozen=True)
class Entry:
    """A candidate item: its display name, a key the dataset resolves to image data, a caption."""

    name: str
    key: Path | int
    caption: str | None


class ScannedImages:
    """Base of file-backed datasets: decode every entry once, keep the usable ones, warn once.

    Subclasses list their :class:`Entry` values, record problems found before decoding (such as
    a malformed metadata line) in ``report``, then call :meth:`_scan`. Entries keyed by file path
    need nothing more; other keys (a row number) need :meth:`_fetch` overridden.
    """

    def __init__(
        self, *, resolution: int, max_pixels: int = DEFAULT_MAX_PIXELS, cache: bool = True
    ) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        self.resolution = resolution
        self.max_pixels = max_pixels
        self.cache = cache
        self.report = LoadReport()
        self._entries: list[Entry] = []
        self._captions: list[str] = []
        self._pixels: list[np.ndarray] = []

    def _fetch(self, key: Path | int) -> ImageSource:
        """The image data behind an entry's key; a Path key is the image file itself."""
        if isinstance(key, Path):
            return key
        raise NotImplementedError(f"{type(self).__name__} does not say how to fetch {key!r}")

    def _scan(self, entries: Iterable[Entry], *, origin: str, fix: str) -> None:
        """Decode every entry; raise ValueError naming ``origin`` and ``fix`` if none is usable."""
        for entry in entries:
            if entry.caption is None:
                self.report.skip("missing_caption", entry.name)
                continue
            try:
                image, mode = load_rgb(self._fetch(entry.key), max_pixels=self.max_pixels)
            except ImageRejected as rejected:
                self.report.skip(rejected.reason, entry.name)
                continue
            if mode is not None:
                self.report.convert(mode, entry.name)
            self._entries.append(entry)
            self._captions.append(entry.caption)
            if self.cache:
                self._pixels.append(square_pixels(image, self.resolution))
        if not self._entries:
            raise ValueError(f"no usable images in {origin}:\n{self.report.summary()}\n{fix}")
        if self.report.skipped or self.report.converted:
            total = len(self._entries) + self.report.num_skipped
            warnings.warn(
                f"{origin}: kept {len(self._entries)} of {total} images\n{self.report.summary()}",
                ImageLoadWarning,
                stacklevel=3,
            )

    def __len__(self) -> int:
        return len(self._entries)

    def item_name(self, index: int) -> str:
        """The name of kept item ``index``: a folder's ``file_name`` or relative path."""
        return self._entries[index].name

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        entry = self._entries[index]
        if self.cache:
            pixels = self._pixels[index]
        else:
            try:
                image, _ = load_rgb(self._fetch(entry.key), max_pixels=self.max_pixels)
            except ImageRejected as rejected:
                raise RuntimeError(
                    f"{entry.name} was readable when the dataset was built but is not now "
                    f"({rejected}); rebuild the dataset"
                ) from rejected
            pixels = square_pixels(image, self.resolution)
        return array_to_tensor(pixels), self._captions[index]
