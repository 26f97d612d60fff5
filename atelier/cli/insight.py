"""``atelier explain`` (the reverse process as a filmstrip and GIF) and ``atelier inspect``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from torch import nn

from atelier.cli.errors import fail
from atelier.cli.generate import DEFAULT_MODEL, _load
from atelier.eval.explain import reverse_process, save_explanation
from atelier.eval.inspect import tree


def explain(
    prompt: str = typer.Argument(..., help="What to draw."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder."),
    seed: int = typer.Option(0, "--seed"),
    steps: int = typer.Option(None, "--steps", help="Sampler steps (default: the model's)."),
    guidance: float = typer.Option(None, "--guidance", help="CFG scale (default: the model's)."),
    sampler: str = typer.Option(None, "--sampler", help="Sampler (default: the model's)."),
    output: Path = typer.Option(Path("out/explain"), "-o", "--output", help="Output folder."),
) -> None:
    """Save x_t and the predicted x_0 at every step; prints the filmstrip and GIF paths."""
    if not prompt.strip():
        raise fail("the prompt is empty; say what to draw")
    loaded = _load(model)
    try:
        options = loaded.config.defaults.overridden(steps=steps, guidance=guidance, sampler=sampler)
    except ValueError as err:
        raise fail(str(err)) from None
    image, frames = reverse_process(loaded.pipeline(), prompt, seed=seed, options=options)
    stem = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "prompt"
    strip, gif = save_explanation(frames, output, f"{stem}-{seed}")
    typer.echo(str(strip))
    typer.echo(str(gif))


def inspect(
    model: str = typer.Argument(
        DEFAULT_MODEL, help="Model name or folder (text-to-image or CLIP)."
    ),
    depth: int = typer.Option(2, "--depth", help="Levels of submodules to unfold."),
) -> None:
    """Print the model's architecture as a tree with parameter counts per component."""
    from atelier.pipelines.clip_folder import load_clip
    from atelier.pipelines.model_folder import resolve

    try:
        kind = json.loads((resolve(model) / "config.json").read_text()).get("kind")
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    if kind == "clip":
        try:
            clip = load_clip(model)
        except ValueError as err:
            raise fail(str(err)) from None
        parts = {"image_tower": clip.visual, "text_tower": clip.text,
                 "projections": _projections(clip)}  # fmt: skip
    elif kind == "vae":
        from atelier.training.run import load_vae

        parts = {"vae": load_vae(model)[0]}
    else:
        loaded = _load(model)
        parts = {"text_encoder": loaded.text_encoder, "unet": loaded.unet}
        if loaded.vae is not None:
            parts["vae"] = loaded.vae
    typer.echo(tree(parts, depth=depth))


def _projections(clip) -> nn.Module:
    """The CLIP's joint-space projections and temperature as one module, for the tree."""
    holder = nn.Module()
    holder.image_projection = clip.image_projection
    holder.text_projection = clip.text_projection
    holder.logit_scale = clip.logit_scale
    return holder
