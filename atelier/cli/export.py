"""``atelier export MODEL -o DIR [--half] [--name N] [--sampler S --steps K --guidance W]``: copy a
model folder, optionally as float16, under a new name (an A/B arm promoted to the shipped name),
and with new default sampling settings (a sweep's choice)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import typer

from atelier.cli.errors import fail
from atelier.pipelines.model_folder import load_model, read_folder_config, save_model
from atelier.pipelines.upscale import KIND as UPSCALER
from atelier.pipelines.upscale import load_upscaler, save_upscaler


def _upscaler_folder(model: str) -> Path | None:
    """``model``'s folder if its config.json declares an upscaler, else None (load_model then
    reports whatever is wrong with it)."""
    try:
        return read_folder_config(model, UPSCALER)[0]
    except (FileNotFoundError, ValueError):
        return None


def _renamed(card: str, old: str, new: str | None) -> str:
    """``card`` with its title line naming ``new`` (the rest, e.g. the training command that made
    the weights under the old name, stays as written)."""
    title = f"# {old}\n"
    if new and card.startswith(title):
        return f"# {new}\n" + card[len(title) :]
    return card


def export(
    model: str = typer.Argument(..., help="Model name or folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write."),
    half: bool = typer.Option(False, "--half", help="Store UNet and VAE weights as float16."),
    sampler: str = typer.Option(None, "--sampler", help="New default sampler."),
    steps: int = typer.Option(None, "--steps", help="New default step count."),
    guidance: float = typer.Option(None, "--guidance", help="New default CFG scale."),
    guidance_rescale: float = typer.Option(
        None, "--guidance-rescale", help="New default CFG rescale phi."
    ),
    name: str = typer.Option(None, "--name", help="New model name (config and card title)."),
) -> None:
    """Write a model folder elsewhere (e.g. into atelier/weights to ship it)."""
    folder = _upscaler_folder(model)
    if folder is not None:
        if sampler or steps or guidance is not None or guidance_rescale is not None:
            raise fail("an upscaler's sampling defaults are set in its config, not by export")
        try:
            upscaler = load_upscaler(folder)
        except (FileNotFoundError, ValueError) as err:
            raise fail(str(err)) from None
        card = _renamed((folder / "README.md").read_text(), upscaler.config.name, name)
        config = dataclasses.replace(upscaler.config, name=name or upscaler.config.name)
        dtype = torch.float16 if half else torch.float32
        typer.echo(str(save_upscaler(upscaler.unet, config, output, card=card, dtype=dtype)))
        return
    try:
        loaded = load_model(model)
        defaults = loaded.config.defaults.overridden(
            sampler=sampler, steps=steps, guidance=guidance, guidance_rescale=guidance_rescale
        )
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    card = (loaded.path / "README.md").read_text() if loaded.path else f"# {loaded.config.name}\n"
    card = _renamed(card, loaded.config.name, name)
    loaded.config = dataclasses.replace(loaded.config, defaults=defaults,
                                        name=name or loaded.config.name)  # fmt: skip
    path = save_model(loaded, output, card=card, dtype=torch.float16 if half else torch.float32)
    typer.echo(str(path))
