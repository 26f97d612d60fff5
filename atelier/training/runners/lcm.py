"""Distil a trained text-to-image diffusion model (the recipe's ``diffusion_model``, the teacher)
into a latent consistency model (``kind = "lcm"``; ``training/lcm_task.py``).

The student is the teacher's UNet with ``guidance_embedding``, started from its weights; it
trains on the recipe's images in the teacher's own latent space (its autoencoder's encodings,
kept on disk) and captions, read by the teacher's frozen text encoder. The export is a diffusion
model folder of the teacher's kind whose defaults sample with LCM's sampler.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from atelier.data.shapes import ShapesDataset
from atelier.kinds import diffusion as diffusion_kind
from atelier.kinds.card import METRICS_TODO, cost, model_card
from atelier.kinds.diffusion import Model, save_model
from atelier.models.unet import UNet
from atelier.paths import home
from atelier.shapes.bench import load_suite
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.training.callbacks import CPULedger, TimestepLossLogger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.lcm_task import ConsistencyDistillation, ConsistencyDistillationTask
from atelier.training.loop import train
from atelier.training.recipe_data import (
    base_model,
    captions,
    folder_digest,
    model_latents,
    recaptioned,
    recipe_images,
)
from atelier.training.recipes import Recipe, RecipeError

SAMPLE_PROMPTS = 48


class _Latents:
    """(latent, caption) items."""

    def __init__(self, latents: torch.Tensor, captions: list[str]) -> None:
        self.latents, self.captions = latents, captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.latents[i], self.captions[i]


def student_of(teacher: UNet) -> UNet:
    """The teacher's architecture taking the guidance scale, with the teacher's weights (its
    w-embedding at zero, so it starts computing the teacher's conditional output)."""
    student = UNet(replace(teacher.config, guidance_embedding=True))
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if missing != ["time_embedding.cond_proj.weight"] or unexpected:
        raise RecipeError(f"cannot start the student from its teacher: missing {missing}, "
                          f"unexpected {unexpected}")  # fmt: skip
    return student


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    before = process_cpu_seconds()
    distillation = recipe.distillation or ConsistencyDistillation()
    if not distillation.guidance_min <= recipe.sampling.guidance <= distillation.guidance_max:
        raise RecipeError(
            f"sampling.guidance {recipe.sampling.guidance} lies outside the scales the student "
            f"learns, [{distillation.guidance_min}, {distillation.guidance_max}] "
            f"(distillation.guidance_min, distillation.guidance_max)"
        )
    teacher = base_model(recipe, "diffusion_model", diffusion_kind.KIND, role="distils",
                         train_with="shapes-ldm-minilm")  # fmt: skip
    if teacher.unet.config.guidance_embedding:
        raise RecipeError(f"{recipe.diffusion_model} already takes the guidance scale as an "
                          "input: distil a model guided without it")  # fmt: skip
    recipe = replace(recipe, data=replace(recipe.data, resolution=teacher.resolution))
    images = recipe_images(recipe, data_dir)
    key = images.cache_key if isinstance(images, ShapesDataset) else folder_digest(data_dir)
    latents = model_latents(teacher, images, cache_key=key)
    data = recaptioned(recipe, images, _Latents(latents, captions(images)))
    torch.manual_seed(recipe.train.seed)
    student = student_of(teacher.unet)
    text_encoder = teacher.text_encoder.eval()
    prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
    if isinstance(text_encoder, MiniLMTextEncoder):
        preload_text_states(text_encoder, ["", *captions(data), *prompts], home() / "data")
    config = teacher.config
    task = ConsistencyDistillationTask(
        student=student, teacher=teacher.unet, text_encoder=text_encoder,
        diffusion=config.diffusion, distillation=distillation, latent_shape=config.latent_shape,
        vae=teacher.vae, latent_space=config.latent_space, sample_prompts=prompts,
        sample_options=recipe.sampling,
    )  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[TimestepLossLogger(config.diffusion.n_train), ledger])  # fmt: skip
    final_weights(run_dir, "unet", student)
    model = Model(replace(config, name=recipe.name, unet=student.config, defaults=recipe.sampling),
                  student.eval(), text_encoder, teacher.vae)  # fmt: skip
    section, cpu = cost(recipe.name, ledger.total, trained="UNet, distilled",
                        base=recipe.diffusion_model,
                        what=f"its teacher {recipe.diffusion_model}")  # fmt: skip
    about = (
        f"Latent consistency distillation (Luo et al. 2023) of {recipe.diffusion_model}: its "
        f"UNet takes the guidance scale as an input (learned for scales "
        f"{distillation.guidance_min} to {distillation.guidance_max}) and draws in 1 to 4 "
        f"steps of LCM's sampler; defaults: {recipe.sampling.summary()}.\n\n"
    )
    card = model_card(recipe.name, command=command, init_from=recipe.diffusion_model, cpu=cpu,
                      body=about + section + METRICS_TODO, recipe=asdict(recipe))  # fmt: skip
    return save_model(model, run_dir / "model", card=card)
