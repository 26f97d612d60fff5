"""``atelier explain`` (how an image came to be, as a filmstrip and GIF) and ``atelier inspect``."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from atelier.budget import check_prompt
from atelier.cli.common import (
    DIFFUSION_PANEL,
    GUIDANCE,
    OPTION,
    STEPS,
    load_generator,
    options_for,
)
from atelier.cli.errors import fail, writable_folder
from atelier.kinds.default import DEFAULT_MODEL


def explain(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder."),
    seed: int = typer.Option(0, "--seed"),
    steps: int = STEPS,
    guidance: float = GUIDANCE,
    sampler: str = typer.Option(
        None, "--sampler", help="Sampler (default: the model's).", rich_help_panel=DIFFUSION_PANEL
    ),
    option: list[str] = OPTION,
    output: Path = typer.Option(Path("out/explain"), "-o", "--output", help="Output folder."),
) -> None:
    """Save a frame per step, captioned with it: a diffusion model's x_t over its predicted x_0,
    a token model's grid with the undecided tokens grey; prints the filmstrip and GIF paths."""
    from atelier.eval.explain import reverse_process, save_explanation
    from atelier.eval.token_filling import token_filling
    from atelier.kinds import diffusion
    from atelier.kinds.token_model import TokenModel
    from atelier.pipelines.composable import split_and

    if not prompt.strip():
        raise fail("the prompt is empty; say what to draw")
    try:
        check_prompt(prompt)
        split_and(prompt)  # AUTOMATIC1111's AND: every sub-prompt must hold text
    except ValueError as err:
        raise fail(str(err)) from None
    writable_folder(output)
    loaded = load_generator(model)
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler}
    options = options_for(loaded.name, loaded.defaults, flags, option)
    if isinstance(loaded, diffusion.Model):
        image, frames = reverse_process(loaded.pipeline(), prompt, seed=seed, options=options)
        shows = "x_t (top) and the predicted x_0 (bottom) after each step"
    elif isinstance(loaded, TokenModel):
        image, frames = token_filling(loaded.pipeline(), prompt, seed=seed, options=options)
        shows = "the token grid after each step (grey: not decided yet)"
    else:
        raise fail(f"explain shows diffusion and token models step by step; {model} is neither")
    stem = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "prompt"
    title = f"{loaded.name}, seed {seed}: {prompt!r}; {shows}"
    strip, gif = save_explanation(frames, output, f"{stem}-{seed}", title=title)
    typer.echo(str(strip))
    typer.echo(str(gif))


def inspect(
    model: str = typer.Argument(DEFAULT_MODEL, help="Model name or folder (any kind)."),
    depth: int = typer.Option(2, "--depth", help="Levels of submodules to unfold."),
) -> None:
    """Print the model's kind, its sampling options, and its architecture as a tree with
    parameter counts per component."""
    from atelier.eval.inspect import tree
    from atelier.kinds.folder import read_config, resolve
    from atelier.kinds.registry import kind_of

    try:
        folder = resolve(model)
        config = read_config(folder)
        kind = kind_of(folder, config)
        loaded = kind.load(folder, config, device="cpu")
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    facts = kind.facts(config)
    typer.echo(f"{folder.name}: {facts.title} (kind {config['kind']!r})")
    if facts.options:
        defaults = getattr(loaded, "defaults", None)
        typer.echo("options (`--option NAME=VALUE`; default: this model's):")
        for spec in facts.options:
            value = getattr(defaults, spec.name, spec.default)
            choices = f", one of {', '.join(spec.choices)}" if spec.choices else ""
            typer.echo(f"  {spec.name} ({spec.type}{choices}): {value}")
    typer.echo(tree(kind.modules(loaded), depth=depth))
