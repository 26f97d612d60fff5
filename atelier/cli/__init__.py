"""The one ``atelier`` command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import typer

from atelier import __version__
from atelier.budget import reset_budget, set_budget
from atelier.cli.clip import app as clip_app
from atelier.cli.compare import compare
from atelier.cli.data import app as data_app
from atelier.cli.edit import img2img, inpaint, outpaint, upscale, variations
from atelier.cli.errors import fail
from atelier.cli.evaluate import eval_diff, evaluate
from atelier.cli.exit import exit_now
from atelier.cli.export import export
from atelier.cli.generate import generate, replay
from atelier.cli.insight import explain, inspect
from atelier.cli.interpolate import interpolate
from atelier.cli.serve import serve
from atelier.cli.shapes import app as shapes_app
from atelier.cli.sweep import sweep
from atelier.cli.train import RecipeHelp, train
from atelier.cli.vqgan_clip import vqgan_clip

app = typer.Typer(
    name="atelier",
    help="Text-to-image generation you can train, run, edit with, serve and measure on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(shapes_app, name="shapes")
app.add_typer(clip_app, name="clip")
app.add_typer(data_app, name="data")
app.command()(generate)
app.command()(replay)
app.command()(interpolate)
app.command()(img2img)
app.command()(inpaint)
app.command()(outpaint)
app.command()(variations)
app.command()(upscale)
app.command(cls=RecipeHelp)(train)
app.command("eval")(evaluate)
app.command("eval-diff")(eval_diff)
app.command()(sweep)
app.command()(compare)
app.command()(explain)
app.command()(inspect)
app.command()(serve)
app.command()(export)
app.command("vqgan-clip")(vqgan_clip)


def _one_line_summaries(group: typer.Typer) -> None:
    """List every command by its docstring's first paragraph on one line: typer keeps the
    docstring's line breaks, which wrap raggedly in the list of commands."""
    for info in group.registered_commands:
        if info.short_help is None and info.callback is not None:
            first = (info.callback.__doc__ or "").strip().split("\n\n")[0]
            info.short_help = " ".join(first.split()) or None
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _one_line_summaries(sub.typer_instance)


_one_line_summaries(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atelier {__version__}")
        raise typer.Exit()


LIMITS = "Resource limits (refusals name the one they hit)"


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    max_pixels: int = typer.Option(
        None, "--max-pixels", rich_help_panel=LIMITS, help="Pixels per image (default 1,048,576)."
    ),
    max_steps: int = typer.Option(
        None, "--max-steps", rich_help_panel=LIMITS, help="Sampler steps per image (default 1,000)."
    ),
    max_images: int = typer.Option(
        None, "--max-images", rich_help_panel=LIMITS, help="Images per command (default 10,000)."
    ),
    max_parameters: int = typer.Option(
        None,
        "--max-parameters",
        rich_help_panel=LIMITS,
        help="Parameters of one network a model folder builds (default 10^9).",
    ),
    max_prompt_chars: int = typer.Option(
        None,
        "--max-prompt-chars",
        rich_help_panel=LIMITS,
        help="Characters per prompt (default 20,000).",
    ),
) -> None:
    """Text-to-image generation you can train, run, edit with, serve and measure on a CPU."""
    reset_budget()
    ctx.call_on_close(reset_budget)  # the limits last as long as this command
    try:
        set_budget(
            max_pixels=max_pixels,
            max_steps=max_steps,
            max_images=max_images,
            max_parameters=max_parameters,
            max_prompt_chars=max_prompt_chars,
        )
    except ValueError as err:
        raise fail(str(err)) from None


def main() -> None:
    """Console entry point: the command, then an exit without torch's teardown (cli/exit.py)."""
    try:
        app()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)
