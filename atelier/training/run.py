"""``atelier train RECIPE``: pick the runner of the recipe's kind, train, install the model.

Run state (checkpoints, logs, sample grids, caches) lives outside the work tree, under
``~/.cache/atelier`` by default; the exported model is written to ``<run>/model`` and installed
in ``~/.cache/atelier/models``, where other recipes and ``--model`` find it by name.

A model is installed under its recipe's name, except when that name is a shipped model's: a
user's models come first when a name is looked up, so a short test run would silently replace
the shipped model for every command and every recipe that builds on it (the latent recipes all
train on ``shapes-vae``). Such a run installs as ``<name>-local`` unless ``replace_shipped``
(``atelier train --install``) asks for the shipped name.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from atelier.atomic import write_atomic
from atelier.kinds.card import with_note
from atelier.kinds.folder import SHIPPED, install, is_shipped
from atelier.paths import home
from atelier.training.checkpoint import CheckpointError, checkpoint_files
from atelier.training.fine_tune import with_base_architecture
from atelier.training.recipe import Recipe, RecipeError
from atelier.training.runners import (
    autoencoder,
    clip,
    diffusion,
    digits,
    features,
    gan,
    lcm,
    noised,
    personal,
    tokenizer,
    tokens,
    unclip,
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
    "unclip-prior": unclip.run_prior,
    "unclip": unclip.run_decoder,
    "gan": gan.run,
    "clip-noised": noised.run_clip,
    "classifier-noised": noised.run_classifier,
    "lcm": lcm.run,
    "digit-classifier": digits.run,
    "lora": personal.run,
    "dreambooth": personal.run,
    "textual-inversion": personal.run,
}
# Recipes whose result is not a model folder: the runner installs it where it belongs.
ADAPTER_KINDS = ("lora", "textual-inversion")
LOCAL_SUFFIX = "-local"
# How a model of each recipe kind (and an inpainting one) is used once installed as NAME.
USES = {
    "vae": "train a latent recipe on it with vae_model={name} "
    "(e.g. `atelier train shapes-ldm-minilm vae_model={name}`)",
    "ldm": "`atelier generate PROMPT --model {name}`",
    "pixel": "`atelier generate PROMPT --model {name}`",
    "inpainting": "`atelier inpaint IMAGE MASK PROMPT --method trained --model {name}`",
    "clip": "`--clip-model {name}` (generate --rerank clip, eval), "
    "`atelier clip classify ... --model {name}`",
    "features": "`atelier eval ... --features {name}`",
    "upscaler": "`atelier upscale IMAGE --model {name}`",
    "tokenizer": "train a token recipe on it with tokenizer_model={name} "
    "(e.g. `atelier train shapes-maskgit tokenizer_model={name}`)",
    "dalle": "`atelier generate PROMPT --model {name}`",
    "maskgit": "`atelier generate PROMPT --model {name}`",
    "unclip-prior": "train an unCLIP decoder beside it with prior_model={name} "
    "(e.g. `atelier train shapes-unclip prior_model={name}`)",
    "unclip": "`atelier generate PROMPT --model {name}`, `atelier variations IMAGE --model {name}`",
    "gan": "`atelier generate PROMPT --model {name}`, `atelier interpolate PROMPT --model {name}`",
    "clip-noised": "`atelier generate PROMPT --clip-guidance 3 --clip-model {name}` (with the "
    "diffusion model it was trained beside)",
    "classifier-noised": "`atelier generate PROMPT --classifier-guidance 3 --classifier-model "
    "{name}` (with the diffusion model it was trained beside)",
    "lcm": "`atelier generate PROMPT --model {name}` (4 steps; `--steps 1` or 2 for fewer)",
    "digit-classifier": "`atelier.eval.digits.judge_digits(images, digits, classifier=...)` with "
    "`load_digit_classifier({name!r})`",
    "dreambooth": "`atelier generate PROMPT --model {name}`",
    "lora": "`atelier generate PROMPT --lora {name}:1`, or `<lora:{name}:1>` in a prompt",
    "textual-inversion": "its word in a prompt (`atelier generate PROMPT --embedding {name}`)",
}


def install_name(name: str, *, replace_shipped: bool = False) -> str:
    """The name a run of the recipe named ``name`` installs its model as: ``name``, or
    ``name-local`` when a shipped model has that name and replacing it was not asked for."""
    return name if replace_shipped or not is_shipped(name) else name + LOCAL_SUFFIX


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    resume: bool = False,
    data_dir: Path | None = None,
    command: str = "atelier train",
    replace_shipped: bool = False,
) -> Path:
    """Train ``recipe`` into ``out`` (default: under ~/.cache/atelier/runs); return its installed
    model folder. ``command`` is what the user typed, which the model card records;
    ``replace_shipped``: install under the recipe's name even if a shipped model has it."""
    if recipe.data.hard_negatives and recipe.kind not in ("clip", "gan"):
        raise RecipeError(
            f"data.hard_negatives is for contrastive (CLIP) recipes and GANs; {recipe.name} "
            f"is a {recipe.kind} recipe: drop the override"
        )
    if recipe.data.augment and recipe.kind not in ("clip", "features"):
        raise RecipeError(
            f"data.augment moves pictures for CLIP and feature-network recipes; {recipe.name} "
            f"is a {recipe.kind} recipe: drop the override"
        )
    run_dir = out if out is not None else home() / "runs" / recipe.name
    found = checkpoint_files(run_dir)
    if found and not resume:
        raise RecipeError(
            f"{run_dir} already holds the checkpoints of a run (newest: step {found[-1][0]}); "
            "add --resume to continue it, or give --out another folder to start afresh"
        )
    asked = recipe.name
    # The model is named what it is installed as, so its PNGs and card name it that way too.
    recipe = replace(recipe, name=install_name(asked, replace_shipped=replace_shipped))
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.init_from is not None and recipe.kind in ("ldm", "pixel"):
        recipe = with_base_architecture(recipe)
    write_atomic(run_dir / "recipe.json", json.dumps(asdict(recipe), indent=2, default=str))
    began = time.time()
    try:
        folder = RUNNERS[recipe.kind](
            recipe, run_dir, resume=resume, data_dir=data_dir, command=command
        )
    except CheckpointError as err:
        raise RecipeError(
            f"cannot resume {run_dir}: {err}. Delete {run_dir} to start the run afresh, or "
            "give --out another folder"
        ) from None
    if recipe.kind in ADAPTER_KINDS:
        print(f"trained {recipe.name} in {(time.time() - began) / 60:.1f} min; installed: {folder}")
        return folder
    note = _install_note(asked, recipe.name)
    if note:
        card = folder / "README.md"
        write_atomic(card, with_note(card.read_text(), note))
    path = install(folder, recipe.name)
    print(f"trained {recipe.name} in {(time.time() - began) / 60:.1f} min; model: {path}")
    _say_where(asked, recipe, path)
    return path


def _install_note(asked: str, name: str) -> str:
    """What the card of a model installed as ``name`` from the recipe ``asked`` says about a
    shipped model of that name, if there is one."""
    if name != asked:
        return (
            f"Installed as {name} beside the shipped {asked}, which it does not replace "
            f"(`atelier train {asked} --install` would)."
        )
    if is_shipped(name):
        return (
            f"Replaces the shipped {name} in this user's models folder (the shipped one stays "
            f"in {SHIPPED / name})."
        )
    return ""


def _say_where(asked: str, recipe: Recipe, path: Path) -> None:
    """Tell the user when the model went in beside a shipped one, or replaced it."""
    name = recipe.name
    if name != asked:
        use = USES["inpainting" if recipe.inpainting else recipe.kind].format(name=name)
        print(
            f"installed as {name}, beside the shipped {asked}, which stays in use (`--install` "
            f"replaces it; name=NAME picks another name). Use it: {use}"
        )
        earlier = home() / "models" / asked
        if (earlier / "config.json").is_file():
            print(
                f"note: {earlier}, installed by an earlier run, still replaces the shipped "
                f"{asked}; delete it to use the shipped one again"
            )
    elif is_shipped(name):
        print(
            f"{name} now replaces the shipped {name} for every command and recipe of this "
            f"user; delete {path} to use the shipped one again"
        )
