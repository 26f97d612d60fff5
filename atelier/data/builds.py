"""What the real-data builders (``data/mnist.py``, ``data/emoji.py``) share: the folder layout, a
stable held-out split, and writing the whole folder or nothing.

A built dataset is a folder::

    DIR/train/metadata.jsonl    imagefolder: {"file_name": "images/...", "text": ..., ...}
    DIR/train/images/...        the PNGs training reads (``--data DIR/train``)
    DIR/heldout/...             the same layout for the held-out images no training run sees
    DIR/split.json              the builder, its source, the counts and the held-out keys
    DIR/LICENSE, DIR/NOTICE     the source package's licence and what the images are under
    DIR/README.md               how it was made

The two halves are separate imagefolders rather than one with a split column, because the
imagefolder reader (``data/folder.py``) trains on every image it lists: held-out images cannot
reach a run that is given ``DIR/train``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "split.json"
TRAIN = "train"
HELD_OUT = "heldout"


class BuildError(ValueError):
    """A dataset that cannot be written where asked; the message says what to change."""


@dataclass
class BuildReport:
    """What a builder wrote and what it skipped (by reason, with the skipped items' names)."""

    folder: Path
    train: int = 0
    held_out: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, name: str) -> None:
        """Record that item ``name`` was left out for ``reason``."""
        self.skipped.setdefault(reason, []).append(name)

    @property
    def num_skipped(self) -> int:
        """Number of items left out."""
        return sum(len(names) for names in self.skipped.values())

    def summary(self) -> str:
        """One line: the counts, and the skipped items by reason."""
        line = f"{self.train} training images, {self.held_out} held out"
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            line += f"; skipped {len(names)} ({reason}): {shown}"
        return line


def stable_unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (SHA-256): the same on every machine and run,
    unlike Python's ``hash`` of a string."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def write_metadata(folder: Path, rows: Iterable[dict[str, Any]]) -> int:
    """``folder/metadata.jsonl``, one JSON object a line; the number of lines."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    (folder / "metadata.jsonl").write_text("".join(line + "\n" for line in lines), "utf-8")
    return len(lines)


def check_target(target: Path) -> None:
    """Refuse to build over anything but nothing, an empty folder, or an earlier build."""
    if not target.exists():
        return
    if not target.is_dir():
        raise BuildError(f"{target} is a file; give -o a folder")
    if (target / MARKER).is_file() or not any(target.iterdir()):
        return
    raise BuildError(f"{target} holds other files (no {MARKER} of an earlier build); give -o a "
                     "new or empty folder")  # fmt: skip


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to build in, renamed to ``target`` when the block ends
    without an error, and removed when it raises: an interrupted or failed build leaves nothing
    half-written, and an earlier build at ``target`` stays as it was until the new one is whole.
    """
    target = Path(target)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.building-"))
    try:
        yield stage
        os.chmod(stage, 0o755)  # mkdtemp makes it owner-only; a dataset is meant to be shared
        _swap_in(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path) -> None:
    """Move ``stage`` to ``target``; an earlier build there is moved aside first and deleted
    only once the new one is in place (two renames: no moment with neither on disk)."""
    if not target.exists():
        os.replace(stage, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, old / "previous")
    try:
        os.replace(stage, target)
    except BaseException:
        os.replace(old / "previous", target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
