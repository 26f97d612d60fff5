"""Emoji: the npm package ``emoji-datasource-google`` as a captioned image folder.

The package holds ``emoji.json`` (one entry per emoji: ``name``, ``unified`` code points,
``image`` file, ``short_names``, ``category``, ``subcategory``, optional ``keywords``, and
``skin_variations``, each with its own ``unified`` and ``image``) and the 64 x 64 RGBA Noto
Emoji PNGs in ``img/google/64/`` (Apache-2.0; the data is MIT). Version 16.0.0 has 1,911
emoji and 1,875 skin-tone variations: 3,786 images.

Each image is composited over white and captioned from its name, short names, keywords (the
subcategory's words when the package has none), and skin tones: "red apple, apple, fruit, food".
Held out: the emoji whose base ``unified`` hashes into the lowest 10%, with all their skin tones,
so no training run sees the name. A PNG that does not decode is skipped with a warning; a
malformed ``emoji.json`` refuses the build.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from atelier.data.builds import (
    HELD_OUT,
    MARKER,
    TRAIN,
    BuildError,
    BuildReport,
    stable_unit,
    staged_folder,
    write_metadata,
)
from atelier.data.images import ImageLoadWarning, ImageRejected, load_rgb, square_pixels
from atelier.data.npm import NpmPackage, PackageError, installed_version

EMOJI_PACKAGE = NpmPackage(
    name="emoji-datasource-google",
    version="16.0.0",
    integrity="sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    keep=("package.json", "LICENSE", "README.md", "emoji.json", "img/google/64/*.png"),
    max_bytes=128 * 2**20,
)
IMAGES = Path("img") / "google" / "64"
DEFAULT_SIZE = 64
HELD_OUT_FRACTION = 0.1
MAX_CAPTION_CHARS = 160
MAX_IMAGE_PIXELS = 512 * 512
SKIN_TONES = {"1F3FB": "light skin tone", "1F3FC": "medium-light skin tone",
              "1F3FD": "medium skin tone", "1F3FE": "medium-dark skin tone",
              "1F3FF": "dark skin tone"}  # fmt: skip
_UNIFIED = re.compile(r"[0-9A-F]{4,6}(-[0-9A-F]{4,6})*")
_IMAGE = re.compile(r"[0-9a-f]{4,6}(-[0-9a-f]{4,6})*\.png")
_TONES = re.compile(r"1F3F[B-F](-1F3F[B-F])?")


@dataclass(frozen=True)
class EmojiImage:
    """One picture: its ``unified`` code, the base emoji's (the split's key), file, caption."""

    unified: str
    base: str
    image: str
    caption: str
    name: str
    category: str


def _words(text: str) -> str:
    return " ".join(text.replace("_", " ").split()).lower()


def emoji_caption(entry: dict[str, Any], tones: str | None = None) -> str:
    """The caption of an emoji entry (and a skin-tone key such as ``"1F3FB-1F3FC"``):
    its name, short names, keywords or subcategory words, then its tones, lower-case,
    deduplicated, cut after whole phrases at :data:`MAX_CAPTION_CHARS`."""
    phrases = [_words(entry["name"])]
    phrases += [_words(short) for short in entry.get("short_names") or []]
    keywords = entry.get("keywords")
    if keywords:
        phrases += [_words(word) for word in keywords]
    elif entry.get("subcategory"):
        # "food-fruit" -> "fruit", "food": the narrower word first, as a keyword list would.
        phrases += [_words(word) for word in reversed(entry["subcategory"].split("-"))]
    if tones:
        phrases += [SKIN_TONES[tone] for tone in tones.split("-")]
    caption = ""
    for phrase in dict.fromkeys(p for p in phrases if p):
        longer = f"{caption}, {phrase}" if caption else phrase
        if len(longer) > MAX_CAPTION_CHARS:
            break
        caption = longer
    return caption


def _malformed(index: int, what: str) -> PackageError:
    return PackageError(f"emoji.json entry {index}: {what}; the package is malformed, fetch it "
                        f"again (delete its folder under the npm cache) or give a good copy "
                        "with --package")  # fmt: skip


def _check_text_list(entry: dict, key: str, index: int) -> None:
    value = entry.get(key)
    if value is not None and not (isinstance(value, list)
                                  and all(isinstance(v, str) for v in value)):  # fmt: skip
        raise _malformed(index, f"{key} must be a list of strings")


def parse_emoji(data: Any) -> list[EmojiImage]:
    """Every picture ``emoji.json``'s entries name (skin tones included), in file order;
    PackageError naming the first malformed entry."""
    if not isinstance(data, list) or not data:
        raise PackageError("emoji.json must be a non-empty list of emoji entries")
    found: list[EmojiImage] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise _malformed(index, "not an object")
        for key in ("name", "unified", "image"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise _malformed(index, f"no {key}")
        for key in ("short_names", "keywords"):
            _check_text_list(entry, key, index)
        for key in ("category", "subcategory"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise _malformed(index, f"{key} must be a string")
        variations = entry.get("skin_variations") or {}
        if not isinstance(variations, dict):
            raise _malformed(index, "skin_variations must be an object")
        base = entry["unified"]
        pictures = [(base, entry, None)]
        for tones, variation in variations.items():
            if not _TONES.fullmatch(tones) or not isinstance(variation, dict):
                raise _malformed(index, f"skin variation {tones!r} is not a tone key and object")
            for key in ("unified", "image"):
                if not isinstance(variation.get(key), str):
                    raise _malformed(index, f"skin variation {tones} has no {key}")
            pictures.append((base, variation, tones))
        for base_code, item, tones in pictures:
            if not _UNIFIED.fullmatch(item["unified"]):
                raise _malformed(index, f"unified {item['unified']!r} is not code points")
            # The file name becomes a path: only code points and ".png", never "../".
            if not _IMAGE.fullmatch(item["image"]):
                raise _malformed(index, f"image {item['image']!r} is not a code-point file name")
            if item["unified"] in seen:
                raise _malformed(index, f"unified {item['unified']} appears twice")
            seen.add(item["unified"])
            if item.get("has_img_google") is False:
                continue
            found.append(EmojiImage(item["unified"], base_code, item["image"],
                                    emoji_caption(entry, tones), _words(entry["name"]),
                                    str(entry.get("category") or "")))  # fmt: skip
    return found


def read_emoji(package: Path) -> list[EmojiImage]:
    """The pictures of an unpacked emoji package (the folder with ``package.json``)."""
    file = Path(package) / "emoji.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"no emoji.json in {package}: not an emoji-datasource package") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PackageError(f"{file} is not readable JSON ({err})") from None
    return parse_emoji(data)


def is_held_out(base: str) -> bool:
    """Whether the emoji with base code ``base`` (and every skin tone of it) is held out."""
    return stable_unit(f"emoji:{base}") < HELD_OUT_FRACTION


def check_size(size: int) -> None:
    """ValueError unless ``size`` is a multiple of 8 from 16 to 256."""
    if not (16 <= size <= 256 and size % 8 == 0):
        raise ValueError(f"size must be a multiple of 8 from 16 to 256, got {size}")


def build_emoji(package: Path, out: Path, *, size: int = DEFAULT_SIZE,
                progress: bool = False) -> BuildReport:  # fmt: skip
    """Write the emoji of the unpacked package ``package`` to ``out`` (layout in
    ``data/builds.py``); the whole folder or, on any error, nothing. Pictures whose PNG is
    missing or does not decode are skipped, listed in the report and in one warning."""
    check_size(size)
    pictures = read_emoji(package)
    report = BuildReport(Path(out))
    with staged_folder(Path(out)) as stage:
        rows: dict[str, list[dict]] = {TRAIN: [], HELD_OUT: []}
        for part in rows:
            (stage / part / "images").mkdir(parents=True)
        for picture in tqdm(pictures, desc="emoji", unit="img", disable=not progress):
            try:
                image, _ = load_rgb(package / IMAGES / picture.image, max_pixels=MAX_IMAGE_PIXELS)
            except ImageRejected as rejected:
                report.skip(rejected.reason, picture.image)
                continue
            part = HELD_OUT if is_held_out(picture.base) else TRAIN
            name = f"images/{picture.unified.lower()}.png"
            pixels = np.asarray(image) if image.size == (size, size) else square_pixels(image, size)
            Image.fromarray(pixels).save(stage / part / name)
            rows[part].append({"file_name": name, "text": picture.caption,
                               "unified": picture.unified, "name": picture.name,
                               "category": picture.category})  # fmt: skip
        report.train = write_metadata(stage / TRAIN, rows[TRAIN])
        report.held_out = write_metadata(stage / HELD_OUT, rows[HELD_OUT])
        if report.train == 0:
            raise BuildError(f"no usable emoji image in {package / IMAGES}; "
                             f"{report.summary()}")  # fmt: skip
        names = sorted({row["name"] for row in rows[HELD_OUT]})
        _write_notes(package, stage, size=size, report=report, held_names=names)
    if report.skipped:
        warnings.warn(f"emoji: {report.summary()}", ImageLoadWarning, stacklevel=2)
    return report


def _write_notes(package: Path, stage: Path, *, size: int, report: BuildReport,
                 held_names: list[str]) -> None:  # fmt: skip
    version = installed_version(package)
    split = {"builder": "atelier data emoji", "package": f"emoji-datasource-google@{version}",
             "size": size, "train": report.train, "held_out": report.held_out,
             "skipped": report.skipped,
             "held_out_rule": f"emoji whose sha256('emoji:<base unified>') falls in the lowest "
                              f"{HELD_OUT_FRACTION:.0%}, with all their skin tones",
             "held_out_names": held_names}  # fmt: skip
    (stage / MARKER).write_text(json.dumps(split, indent=1, ensure_ascii=False) + "\n", "utf-8")
    licence = package / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, stage / "LICENSE")
    (stage / "NOTICE").write_text(
        "The images are Noto Emoji by Google (https://github.com/googlefonts/noto-emoji), under "
        "the Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0), composited over "
        f"white and written at {size} px. The names, short names and categories are from "
        f"emoji-datasource-google@{version} by Cal Henderson, under the MIT licence in LICENSE.\n",
        "utf-8",
    )
    (stage / "README.md").write_text(
        f"# Emoji (npm emoji-datasource-google@{version})\n\n"
        f"Written by `atelier data emoji --size {size}`: {report.train} training images in "
        f"`train/`, {report.held_out} held out in `heldout/` ({len(held_names)} emoji names "
        "with all their skin tones, fixed by a hash of each emoji's code points, listed in "
        f"split.json); {report.num_skipped} skipped. RGBA composited over white, {size} x "
        f"{size} RGB PNGs. Captions: name, short names, keywords, skin tones.\n\n"
        "Train on `train/` only: `atelier train RECIPE --data DIR/train`.\n",
        "utf-8",
    )
