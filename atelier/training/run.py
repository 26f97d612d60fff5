"""``atelier train RECIPE``: pick the runner of the recipe's kind, train, install the model.

Run state (checkpoints, logs, sample grids, caches) lives outside the work tree, under
``~/.cache/atelier`` by default; the exported model is written to ``<run>/model`` and installed
as ``~/.cache/atelier/models/<recipe name>``, where other recipes and ``--model`` find it by name.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from atelier.atomic import write_atomic
from atelier.kinds.folder import install
from atelier.paths import home
from atelier.training.fine_tune import with_base_architecture
from atelier.training.recipes import Recipe, RecipeError
from atelier.training.runners import (
    autoencoder,
    clip,
    diffusion,
    features,
    tokenizer,
    tokens,
    upscaler,
)

RUNNERS = {
    "vae": autoencoder.run,
    "ldm": diffusion.run,
    "pixel": diffusion.run,
    "clip": clip.run,
    "features": features.run,
    "upscaler": upscaler.run,
    "tokenizer": tokenizer.run,
    "dalle": tokens.run,
    "maskgit": tokens.run,
}


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    data_dir: Path | None = None,
    command: str = "atelier train",
) -> Path:
    """Train ``recipe`` into ``out`` (default: under ~/.cache/atelier/runs); return its installed
    model folder. ``command`` is what the user typed, which the model card records."""
    if recipe.data.hard_negatives and recipe.kind != "clip":
        raise RecipeError(
            f"data.hard_negatives is for contrastive (CLIP) recipes; {recipe.name} is a "
            f"{recipe.kind} recipe: drop the override"
        )
    run_dir = out if out is not None else home() / "runs" / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.init_from is not None and recipe.kind in ("ldm", "pixel"):
        recipe = with_base_architecture(recipe)
    write_atomic(run_dir / "recipe.json", json.dumps(asdict(recipe), indent=2, default=str))
    began = time.time()
    folder = RUNNERS[recipe.kind](
        recipe, run_dir, resume=resume, data_dir=data_dir, command=command
    )
    path = install(folder, recipe.name)
    print(f"trained {recipe.name} in {(time.time() - began) / 60:.1f} min; model: {path}")
    return path
