"""The one ``atelier`` command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import typer

from atelier import __version__
from atelier.cli.clip import app as clip_app
from atelier.cli.compare import compare
from atelier.cli.edit import img2img, inpaint, outpaint, upscale, variations
from atelier.cli.evaluate import eval_diff, evaluate
from atelier.cli.export import export
from atelier.cli.generate import generate, replay
from atelier.cli.insight import explain, inspect
from atelier.cli.serve import serve
from atelier.cli.shapes import app as shapes_app
from atelier.cli.sweep import sweep
from atelier.cli.train import train

app = typer.Typer(
    name="atelier",
    help="Text-to-image generation you can train, run, edit with, serve and measure on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(shapes_app, name="shapes")
app.add_typer(clip_app, name="clip")
app.command()(generate)
app.command()(replay)
app.command()(img2img)
app.command()(inpaint)
app.command()(outpaint)
app.command()(variations)
app.command()(upscale)
app.command()(train)
app.command("eval")(evaluate)
app.command("eval-diff")(eval_diff)
app.command()(sweep)
app.command()(compare)
app.command()(explain)
app.command()(inspect)
app.command()(serve)
app.command()(export)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atelier {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Text-to-image generation you can train, run, edit with, serve and measure on a CPU."""


def main() -> None:
    """Console entry point."""
    app()
