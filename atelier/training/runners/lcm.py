"""Distil a trained text-to-image diffusion model (the recipe's ``diffusion_model``, the teacher)
into a latent consistency model (``kind = "lcm"``; ``training/lcm_task.py``).

The student is the teacher's UNet with ``guidance_embedding``, started from its weights; it
trains on the recipe's images in the teacher's own latent space (its autoencoder's encodings,
kept on disk) and captions, read by the teacher's frozen text encoder. The export is a diffusion
model folder of the teacher's kind whose defaults sample with LCM's sampler.

With ``distillation.lora`` (LCM-LoRA) the student is a copy of the teacher's UNet, frozen, with
LoRA adapters attached, and only the adapters train. The export is then two things: the model
folder, its UNet the teacher's with the adapters merged into its weights, and the adapters as a
LoRA installed under the recipe's name (``kinds/adapters.py``), which the teacher loads with
``--lora NAME`` and samples with LCM's sampler.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace
from pathlib import Path

import torch

from atelier.data.shapes import ShapesDataset
from atelier.diffusion.options import SamplingOptions
from atelier.kinds import adapters
from atelier.kinds import diffusion as diffusion_kind
from atelier.kinds.card import METRICS_TODO, cost, model_card
from atelier.kinds.diffusion import Model, save_model
from atelier.models.lora import LoRANetwork
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


def merged_unet(network: LoRANetwork, unet: UNet) -> UNet:
    """A new UNet holding ``unet``'s weights with ``network``'s adapters (attached to it at
    their multiplier) folded in; ``unet`` is left as it was."""
    network.merge()
    try:
        merged = UNet(unet.config)
        merged.load_state_dict(unet.state_dict())
    finally:
        network.unmerge()
    return merged.eval()


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    before = process_cpu_seconds()
    distillation = recipe.distillation or ConsistencyDistillation()
    lora = distillation.lora
    if lora is None and not (distillation.guidance_min <= recipe.sampling.guidance
                             <= distillation.guidance_max):  # fmt: skip
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
    if lora is None:
        student, network = student_of(teacher.unet), None
        trained = {"unet": student}
    else:
        student = copy.deepcopy(teacher.unet).eval().requires_grad_(False)
        network = LoRANetwork.create({"unet": student}, lora).attach(1.0)
        trained = {"lora": network}
    text_encoder = teacher.text_encoder.eval()
    prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
    if isinstance(text_encoder, MiniLMTextEncoder):
        preload_text_states(text_encoder, ["", *captions(data), *prompts], home() / "data")
    config = teacher.config
    task = ConsistencyDistillationTask(
        student=student, teacher=teacher.unet, trained=trained, text_encoder=text_encoder,
        diffusion=config.diffusion, distillation=distillation, latent_shape=config.latent_shape,
        vae=teacher.vae, latent_space=config.latent_space, sample_prompts=prompts,
        sample_options=recipe.sampling,
    )  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[TimestepLossLogger(config.diffusion.n_train), ledger])  # fmt: skip
    name = next(iter(trained))
    final_weights(run_dir, name, trained[name])
    if network is not None:
        return _export_lora(recipe, teacher, student, network, run_dir, command, ledger.total)
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


def lora_command(name: str, base: str, sampling: SamplingOptions) -> str:
    """How to draw with the LCM-LoRA ``name`` on ``base``: its sampling options as flags."""
    return (f'atelier generate PROMPT --model {base} --lora {name} --sampler {sampling.sampler} '
            f'--steps {sampling.steps} --guidance {sampling.guidance} '
            f'--option spacing={sampling.spacing}')  # fmt: skip


def _export_lora(recipe: Recipe, teacher: Model, student: UNet, network: LoRANetwork,
                 run_dir: Path, command: str, cpu_seconds: float) -> Path:  # fmt: skip
    """The LCM-LoRA's two exports: the LoRA, installed, and the model folder with it merged."""
    d, base, name = recipe.distillation, recipe.diffusion_model, recipe.name
    merged = merged_unet(network, student)
    model = Model(replace(teacher.config, name=name, defaults=recipe.sampling), merged,
                  teacher.text_encoder, teacher.vae)  # fmt: skip
    section, cpu = cost(name, cpu_seconds, trained="LoRA on the UNet, distilled", base=base,
                        what=f"its teacher {base}")  # fmt: skip
    params = sum(p.numel() for p in network.parameters())
    about = (
        f"LCM-LoRA (Luo et al. 2023): latent consistency distillation of {base} into LoRA "
        f"adapters of rank {d.lora.rank} on its UNet's {', '.join(d.lora.targets)} ({params:,} "
        f"parameters), the base frozen; the teacher guided at scale "
        f"{_scales(d.guidance_min, d.guidance_max)}, which the adapters learn as part of their "
        f"output (no w-embedding). Two exports of one training: the model {name}, the "
        f"UNet with the adapters merged into its weights (`atelier generate PROMPT --model "
        f"{name}`), and the LoRA {name}, the adapters alone "
        f"(`{lora_command(name, base, recipe.sampling)}`). Defaults: "
        f"{recipe.sampling.summary()}.\n\n"
    )
    card = model_card(name, command=command, init_from=base, cpu=cpu,
                      body=about + section + METRICS_TODO, recipe=asdict(recipe))  # fmt: skip
    info = {"kind": "lcm-lora", "base": base, "sampling": asdict(recipe.sampling),
            "lora": asdict(d.lora), "cpu_seconds": round(cpu_seconds, 1)}  # fmt: skip
    folder = adapters.save_lora(network, run_dir / "lora", name=name, card=card, info=info)
    installed = adapters.install(folder, adapters.loras_dir(), name)
    print(f"LoRA installed: {installed} (use it: `{lora_command(name, base, recipe.sampling)}`)")
    return save_model(model, run_dir / "model", card=card)


def _scales(low: float, high: float) -> str:
    return f"{low}" if low == high else f"drawn from [{low}, {high}]"
