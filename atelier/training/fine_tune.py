"""Fine-tune surgery: starting a recipe from a trained model (``init_from``).

A diffusion fine-tune keeps its base's UNet architecture and latent space and takes its weights
(Stable Diffusion inpainting starts from the base model with zero weights for the extra input
channels); a CLIP fine-tune needs the recipe's architecture.
"""

from __future__ import annotations

import sys
from dataclasses import fields, replace

import torch

from atelier.kinds import clip as clip_kind
from atelier.kinds import diffusion
from atelier.kinds.folder import read_config, resolve
from atelier.kinds.registry import load_model
from atelier.models.clip import CLIP
from atelier.models.latent_space import LatentSpace
from atelier.models.unet import UNet
from atelier.text.encoder import TextEncoder
from atelier.training.recipes import Recipe, RecipeError


def _base_config(recipe: Recipe) -> diffusion.ModelConfig:
    return diffusion.ModelConfig.from_dict(read_config(resolve(recipe.init_from)))


def with_base_architecture(recipe: Recipe) -> Recipe:
    """A fine-tune keeps its base model's UNet architecture, as diffusers' training scripts
    load the pretrained config; only ``in_channels`` stays the recipe's (inpainting adds
    inputs). Says which of the recipe's UNet settings the base's replaced."""
    unet = replace(_base_config(recipe).unet, in_channels=recipe.unet.in_channels)
    changed = [
        f"unet.{f.name}={getattr(unet, f.name)}"
        for f in fields(unet)
        if getattr(unet, f.name) != getattr(recipe.unet, f.name)
    ]
    if changed:
        kept = ", ".join(changed)
        print(f"fine-tuning {recipe.init_from} keeps its UNet: {kept}", file=sys.stderr)
    return replace(recipe, unet=unet)


def base_space(recipe: Recipe, measured: LatentSpace) -> LatentSpace:
    """The latent space of the model a fine-tune starts from, if this data's latents
    (``measured``) are in it up to rounding; else a clear error. The one check of a base's
    space, for every latent normalisation and for pixel space."""
    base = _base_config(recipe)
    if not base.latent_space.matches(measured):
        raise RecipeError(
            f"{recipe.init_from} was trained on another latent space (its latent mean and std "
            f"{base.latent_space.mean}, {base.latent_space.std}; this data's {measured.mean}, "
            f"{measured.std}): fine-tune it with the autoencoder and data it was trained on"
        )
    return base.latent_space


def init_from_base(recipe: Recipe, unet: UNet) -> TextEncoder:
    """Load the base model's UNet weights into ``unet``, with zero weights for any extra input
    channels, and return its text encoder (with its own tokenizer)."""
    base = load_model(recipe.init_from, want=diffusion.KIND)
    state = base.unet.state_dict()
    weight = state["conv_in.weight"]
    target = unet.conv_in.weight
    if weight.shape[1] < target.shape[1]:
        grown = torch.zeros_like(target)
        # The base model's input channels (latents, then coordinates if any) keep their weights;
        # the new channels (mask, masked latents) sit between and start at zero.
        c = recipe.unet.in_channels - (target.shape[1] - weight.shape[1])
        grown[:, :c] = weight[:, :c]
        grown[:, target.shape[1] - (weight.shape[1] - c) :] = weight[:, c:]
        state["conv_in.weight"] = grown
    unet.load_state_dict(state)
    if base.config.text_encoder.kind != recipe.text_encoder.kind:
        raise RecipeError(
            f"{recipe.init_from} has a {base.config.text_encoder.kind} text encoder, the recipe "
            f"a {recipe.text_encoder.kind} one"
        )
    return base.text_encoder.train() if base.text_encoder.trainable else base.text_encoder


def clip_to_fine_tune(recipe: Recipe) -> CLIP:
    """The trained CLIP ``recipe.init_from`` names, checked to have the recipe's architecture."""
    try:
        clip = load_model(recipe.init_from, want=clip_kind.KIND)
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(f"init_from={recipe.init_from}: {err}") from None
    if clip.config != recipe.clip:
        raise RecipeError(
            f"init_from={recipe.init_from} is a CLIP of another architecture ({clip.config}) "
            f"than the recipe's ({recipe.clip}); fine-tuning needs the same one"
        )
    # The card and config.json name the recipe's text tower, so it must be the one loaded: a
    # pooling or size that differs would be written down but never trained.
    if clip.text_config != recipe.text_encoder:
        raise RecipeError(
            f"init_from={recipe.init_from} has another text tower ({clip.text_config}) than the "
            f"recipe's ({recipe.text_encoder}); fine-tuning needs the same one"
        )
    return clip.train()
