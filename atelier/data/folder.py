"""A folder of captioned images, in either common layout.

* Hugging Face ``imagefolder``: ``metadata.jsonl`` at the root, one line per image,
  ``{"file_name": "cats/cat.png", "text": "a cat"}`` (``"caption"`` also accepted), file names
  relative to the root.
* Sidecar text files: ``cat.png`` captioned by ``cat.txt`` beside it, in any subfolder.

With ``caption_source="auto"`` a ``metadata.jsonl`` at the root wins, else sidecars are used.
Hidden files and folders (``.ipynb_checkpoints``) are ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, get_args

from atelier.data.images import (
    CAPTION_KEYS,
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Entry,
    ScannedImages,
    clean_caption,
)

CaptionSource = Literal["auto", "metadata", "sidecar"]
METADATA_FILE = "metadata.jsonl"
_FIX = (
    'every image needs a caption: a line {"file_name": "<path relative to the folder>", '
    f'"text": "<caption>"}} in {METADATA_FILE}, or a .txt file with the same name beside it'
)


def _image_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        hidden = any(part.startswith(".") for part in relative.parts)
        if not hidden and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def _read_sidecar(image: Path) -> str | None:
    try:
        return clean_caption(image.with_suffix(".txt").read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return None


class ImageFolderDataset(ScannedImages):
    """Captioned images from a folder, as (3, R, R) float32 tensors in [-1, 1] and strings.

    Every image is decoded once here; unusable ones are skipped and non-RGB ones converted, both
    listed in ``report`` and in one :class:`~atelier.data.images.ImageLoadWarning`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        resolution: int = 64,
        caption_source: CaptionSource = "auto",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        cache: bool = True,
    ) -> None:
        """Scan ``root``.

        ``max_pixels`` skips images larger than that (read from the header, before decoding).
        ``cache`` keeps the resized pixels in memory (R * R * 3 bytes per image) instead of
        decoding the file again on every access.
        """
        super().__init__(resolution=resolution, max_pixels=max_pixels, cache=cache)
        if caption_source not in get_args(CaptionSource):
            raise ValueError(
                f"caption_source must be one of {get_args(CaptionSource)}, got {caption_source!r}"
            )
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(
                f"image folder {self.root} does not exist or is not a folder; "
                "pass the folder that holds your images"
            )
        metadata = self.root / METADATA_FILE
        if caption_source == "auto":
            caption_source = "metadata" if metadata.is_file() else "sidecar"
        if caption_source == "metadata" and not metadata.is_file():
            raise ValueError(
                f"no {METADATA_FILE} in {self.root}; write one or use caption_source='sidecar'"
            )
        self.caption_source: CaptionSource = caption_source
        images = _image_files(self.root)
        if caption_source == "metadata":
            entries = self._metadata_entries(metadata, images)
        else:
            entries = [Entry(self._name(path), path, _read_sidecar(path)) for path in images]
        if not entries and not self.report.skipped:
            raise ValueError(
                f"no images in {self.root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} "
                f"in it and its subfolders); add images, {_FIX}"
            )
        self._scan(entries, origin=f"image folder {self.root}", fix=f"Fix: {_FIX}.")

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _metadata_entries(self, metadata: Path, images: list[Path]) -> list[Entry]:
        entries = []
        listed = set()
        root = self.root.resolve()
        for number, line in enumerate(metadata.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            file_name = record.get("file_name") if isinstance(record, dict) else None
            if not isinstance(file_name, str) or not file_name:
                self.report.skip("bad_metadata", f"{METADATA_FILE} line {number}")
                continue
            path = (self.root / file_name).resolve()
            if not path.is_relative_to(root):
                self.report.skip("bad_metadata", f"{METADATA_FILE} line {number} ({file_name})")
                continue
            listed.add(path)
            caption = next(
                (clean_caption(record[key]) for key in CAPTION_KEYS if key in record), None
            )
            entries.append(Entry(file_name, path, caption))
        for image in images:
            if image.resolve() not in listed:
                self.report.skip("missing_caption", self._name(image))
        return entries
