"""The one map from a model folder's ``kind`` (its config.json says which) to the module that
owns that kind, and the one loader every command, the server and the page use.

Adding a family: write its kind module (a :class:`~atelier.kinds.base.ModelKind`; a
text-to-image family's loaded model answers :class:`~atelier.kinds.base.TextToImage`), add one
line to :data:`KINDS`, its recipe and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from atelier.kinds import (
    autoencoder,
    clip,
    dalle,
    diffusion,
    digit_classifier,
    features,
    gan,
    maskgit,
    noised_classifier,
    noised_clip,
    tokenizer,
    unclip,
    unclip_prior,
    upscaler,
)
from atelier.kinds.base import Facts, ModelKind, TextToImage
from atelier.kinds.folder import known_models, read_config, resolve

KINDS: dict[str, ModelKind] = {
    "latent": diffusion.KIND,
    "pixel": diffusion.KIND,
    "clip": clip.KIND,
    "features": features.KIND,
    "upscaler": upscaler.KIND,
    "vae": autoencoder.KIND,
    "tokenizer": tokenizer.KIND,
    "dalle": dalle.KIND,
    "maskgit": maskgit.KIND,
    "unclip": unclip.KIND,
    unclip_prior.KIND_NAME: unclip_prior.KIND,
    "gan": gan.KIND,
    noised_clip.KIND_NAME: noised_clip.KIND,
    noised_classifier.KIND_NAME: noised_classifier.KIND,
    digit_classifier.KIND_NAME: digit_classifier.KIND,
}

# The kinds that inpaint and outpaint: diffusion holds the known region's latents to the image's,
# a token model keeps the known region's tokens and draws the others.
PAINTING_KINDS = ("latent", "pixel", "dalle", "maskgit")


def kind_of(folder: Path, config: dict[str, Any] | None = None) -> ModelKind:
    """The kind module of a folder, from its config.json; a clear error for an unknown kind."""
    config = read_config(folder) if config is None else config
    name = config.get("kind")
    if name not in KINDS:
        raise ValueError(
            f"{folder / 'config.json'} names kind {name!r}, which this atelier does not know; "
            f"known kinds: {', '.join(sorted(KINDS))}"
        )
    return KINDS[name]


def load_model(
    model: str | Path, *, want: ModelKind | None = None, device: str | torch.device = "cpu"
) -> Any:
    """Load a model folder (or a known model's name) through its kind. ``want``: the kind the
    caller needs; another kind is refused naming both."""
    folder = resolve(model)
    config = read_config(folder)
    kind = kind_of(folder, config)
    if want is not None and kind is not want:
        raise ValueError(f"{model} is a {kind.label}, not a {want.label}")
    return kind.load(folder, config, device=device)


def load_text_to_image(model: str | Path, *, device: str | torch.device = "cpu") -> TextToImage:
    """A text-to-image model of any family; other kinds are refused naming what they are."""
    folder = resolve(model)
    config = read_config(folder)
    kind = kind_of(folder, config)
    if not kind.facts(config).text_to_image:
        raise ValueError(f"{model} is a {kind.label}, which does not draw from text")
    return kind.load(folder, config, device=device)


def load_painter(model: str | Path, *, device: str | torch.device = "cpu") -> Any:
    """A model that inpaints and outpaints (a kind of :data:`PAINTING_KINDS`); other kinds are
    refused naming what they are."""
    folder = resolve(model)
    config = read_config(folder)
    kind = kind_of(folder, config)
    if config["kind"] not in PAINTING_KINDS:
        raise ValueError(f"{model} is {with_article(kind.label)}, which neither inpaints nor "
                         "outpaints: give a diffusion or token model")  # fmt: skip
    return kind.load(folder, config, device=device)


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


@dataclass(frozen=True)
class Listed:
    """A model findable by name, as listings show it."""

    name: str
    kind: str
    path: Path
    facts: Facts


def describe(model: str | Path) -> Listed:
    """A model's listing from its config.json alone (its weights are not read)."""
    folder = resolve(model)
    config = read_config(folder)
    kind = kind_of(folder, config)
    return Listed(folder.name, str(config["kind"]), folder, kind.facts(config))


def list_models() -> list[Listed]:
    """Every model findable by name whose kind this atelier knows (config.json only read)."""
    out = []
    for folder in known_models().values():
        try:
            out.append(describe(folder))
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # a broken folder is reported when it is used, not listed
    return out
