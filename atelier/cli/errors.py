"""One way for every command to stop on bad input: a message naming the problem, exit code 2,
the one way commands read an input image, and the one way they check where outputs go."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from PIL import Image


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def open_image(path: Path, what: str = "image") -> Image.Image:
    """An image file as upright 8-bit RGB, or exit 2 naming what is wrong with it."""
    from atelier.budget import budget
    from atelier.data.images import ImageRejected, load_rgb

    if not path.is_file():
        raise fail(f"no {what} file at {path}")
    try:
        image, _ = load_rgb(path, max_pixels=budget().max_pixels)
    except ImageRejected as err:
        hint = (
            " (raise the limit with `atelier --max-pixels N ...`)"
            if err.reason == "too_large"
            else ""
        )
        raise fail(f"cannot use {path} as the {what} ({err}){hint}") from None
    return image


def writable_folder(path: Path, flag: str = "-o") -> Path:
    """``path`` as an existing folder this process can write into (created if needed), or exit 2
    naming what stands in the way. Commands call it before any work, so an unwritable output
    never costs a run's images."""
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "is a file" if blocker == path else f"is under {blocker}, which is a file"
        raise fail(f"the output folder {path} {where}; give {flag} a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".atelier-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise fail(f"cannot write into the output folder {path} ({reason}); give {flag} a "
                   "folder you can write to") from None  # fmt: skip
    return path
