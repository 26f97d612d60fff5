"""``atelier export MODEL -o DIR [--half]``: copy a model folder, optionally as float16."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from atelier.cli.errors import fail
from atelier.pipelines.model_folder import load_model, save_model


def export(
    model: str = typer.Argument(..., help="Model name or folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write."),
    half: bool = typer.Option(False, "--half", help="Store UNet and VAE weights as float16."),
) -> None:
    """Write a model folder elsewhere (e.g. into atelier/weights to ship it)."""
    try:
        loaded = load_model(model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    card = (loaded.path / "README.md").read_text() if loaded.path else f"# {loaded.config.name}\n"
    path = save_model(loaded, output, card=card, dtype=torch.float16 if half else torch.float32)
    typer.echo(str(path))
