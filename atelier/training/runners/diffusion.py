"""Train a text-to-image diffusion model: latent (``kind = "ldm"``, on a trained autoencoder's
latents) or pixel (``kind = "pixel"``), from scratch or fine-tuned, optionally for inpainting."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.data.latents import LatentDataset, module_digest
from atelier.data.shapes import ShapesDataset
from atelier.kinds.autoencoder import KIND as AUTOENCODER
from atelier.kinds.card import cost, metrics_todo, model_card
from atelier.kinds.diffusion import Model, ModelConfig, save_model
from atelier.models.latent_space import LatentSpace
from atelier.models.unet import UNet
from atelier.paths import home
from atelier.shapes.bench import load_suite
from atelier.text.factory import build_text_encoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger, TimestepLossLogger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.fine_tune import base_space, init_from_base
from atelier.training.ldm import InpaintingTask, LatentDiffusionTask
from atelier.training.loop import train
from atelier.training.real_samples import real_samples
from atelier.training.recipe import Recipe, RecipeError
from atelier.training.recipe_data import (
    base_model,
    captions,
    folder_digest,
    recaptioned,
    recipe_images,
    trained_on,
)

SAMPLE_PROMPTS = 48


def training_cost(recipe: Recipe, total_cpu: float) -> tuple[str, str]:
    """The card's cost section and CPU time line: this run, plus the model it fine-tunes (whose
    card counts its own base) or else a latent model's autoencoder."""
    if recipe.init_from is not None:
        base, what = recipe.init_from, f"the model it fine-tunes, {recipe.init_from}"
    elif recipe.kind == "ldm":
        base, what = recipe.vae_model, f"its autoencoder {recipe.vae_model}"
    else:
        base, what = None, ""
    return cost(recipe.name, total_cpu, trained="UNet and text encoder", base=base, what=what)


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    images = recipe_images(recipe, data_dir)
    vae, scale = None, 1.0
    if recipe.kind == "ldm":
        trained = base_model(recipe, "vae_model", AUTOENCODER, role="trains on the autoencoder",
                             train_with=recipe.vae_model)  # fmt: skip
        vae, scale = trained.vae, trained.latent_scale
    if vae is not None:
        shapes = isinstance(images, ShapesDataset)
        source = images.cache_key if shapes else folder_digest(images.root)
        key = f"latents-{module_digest(vae)}-{source}.safetensors"
        data = LatentDataset(images, vae, scale=scale, cache_file=home() / "data" / key)
        if recipe.latent_norm == "per_channel":
            # The cache holds z * scale; measure the raw latents' channel statistics.
            space = LatentSpace.measure(data.latents / scale)
        else:
            space = LatentSpace(scale)
        if recipe.init_from is not None:
            # A fine-tune keeps its base's normalisation, which this data must match.
            space = base_space(recipe, space)
        if recipe.latent_norm == "per_channel":
            data.latents = space.to_diffusion(data.latents / scale).float()
        factor = vae.config.downsampling_factor
        latent_shape = (
            vae.config.latent_channels,
            recipe.data.resolution // factor,
            recipe.data.resolution // factor,
        )
    else:
        data, latent_shape = images, (3, recipe.data.resolution, recipe.data.resolution)
        space = LatentSpace() if recipe.init_from is None else base_space(recipe, LatentSpace())
    data = recaptioned(recipe, images, data)
    if recipe.init_from is not None:
        torch.manual_seed(recipe.train.seed)
        unet = UNet(recipe.unet)
        text_encoder = init_from_base(recipe, unet)
    else:
        tokenizer = None
        if recipe.text_encoder.kind == "transformer":
            tokenizer = train_bpe(captions(data), vocab_size=recipe.bpe_vocab)
        torch.manual_seed(recipe.train.seed)
        text_encoder = build_text_encoder(recipe.text_encoder, tokenizer=tokenizer)
        unet = UNet(recipe.unet)
    if recipe.unet.context_dim != text_encoder.dim:
        raise RecipeError(
            f"unet.context_dim {recipe.unet.context_dim} must equal the text "
            f"encoder's width {text_encoder.dim}"
        )
    if recipe.data.source == "shapes":
        prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
        scores = None
    else:
        prompts, scores = real_samples(recipe, images, data_dir, SAMPLE_PROMPTS)
    # The data preparation this process does (text states not yet on disk) counts as training.
    before = process_cpu_seconds()
    if isinstance(text_encoder, MiniLMTextEncoder):
        preload_text_states(text_encoder, ["", *captions(data), *prompts], home() / "data")
    task_class = InpaintingTask if recipe.inpainting else LatentDiffusionTask
    task = task_class(
        unet=unet, text_encoder=text_encoder, diffusion=recipe.diffusion,
        objective=recipe.objective, latent_shape=latent_shape, vae=vae, latent_space=space,
        sample_prompts=prompts, sample_options=recipe.sampling, sample_scores=scores,
    )  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(
        task,
        data,
        recipe.train,
        run_dir=run_dir,
        resume=resume,
        callbacks=[TimestepLossLogger(recipe.diffusion.n_train), ledger],
    )
    for name, module in task.modules().items():
        final_weights(run_dir, name, module)
    config = ModelConfig(
        name=recipe.name, kind="latent" if vae is not None else "pixel",
        resolution=recipe.data.resolution, unet=recipe.unet, text_encoder=recipe.text_encoder,
        diffusion=recipe.diffusion, vae=vae.config if vae is not None else None,
        latent_scale=space.scale, latent_mean=space.mean, latent_std=space.std,
        defaults=recipe.sampling,
    )  # fmt: skip
    model = Model(config, unet.eval(), text_encoder.eval(), vae)
    section, cpu = training_cost(recipe, ledger.total)
    card = model_card(recipe.name, command=command, init_from=recipe.init_from, cpu=cpu,
                      body=section + metrics_todo(recipe.data.source), recipe=asdict(recipe),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    return save_model(model, run_dir / "model", card=card)
