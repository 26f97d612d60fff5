"""One way for every command to stop on bad input: a message naming the problem, exit code 2,
and the one way commands read an input image."""

from __future__ import annotations

from pathlib import Path

import typer
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
