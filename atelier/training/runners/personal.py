"""Teach a trained diffusion model a concept: LoRA, DreamBooth or textual inversion
(``training/personalize.py``). The concept's images come from ``--data DIR`` (a captioned
folder whose captions name the concept by the token) or, without it, the shapes world's concept
set (``shapes/concept.py``). A LoRA is installed in ``<home>/loras/NAME``, an embedding in
``<home>/embeddings/NAME``; a DreamBooth model is a model folder like any other."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from atelier.atomic import write_atomic
from atelier.data.folder import ImageFolderDataset
from atelier.kinds import adapters, diffusion
from atelier.kinds.card import model_card
from atelier.kinds.diffusion import Model, save_model
from atelier.kinds.registry import load_model
from atelier.models.lora import LoRANetwork
from atelier.shapes.caption import caption
from atelier.shapes.concept import (
    check_token,
    concept_suite,
    render_concept,
    training_scenes,
)
from atelier.shapes.scene import sample_scene
from atelier.training.callbacks import CPULedger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.personalize import PersonalTask
from atelier.training.recipes import Recipe, RecipeError

SAMPLE_PROMPTS = 8
CLASS_SEED = 10_000


def concept_data(recipe: Recipe, data_dir: Path | None, resolution: int):
    """The concept's images (N, 3, R, R) in [-1, 1], their captions, and the concept suite's
    prompts (none for a user's folder)."""
    token = recipe.personal.token
    if data_dir is None:
        scenes = training_scenes(recipe.personal.concept_images, token=token)
        images = np.stack([render_concept(scene, resolution) for scene, _ in scenes])
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        return pixels, [text for _, text in scenes], concept_suite(token)
    folder = ImageFolderDataset(data_dir, resolution=resolution)
    items = [folder[i] for i in range(len(folder))]
    if not items:
        raise RecipeError(f"{data_dir} holds no captioned images")
    captions = [text for _, text in items]
    missing = [text for text in captions if token not in text.lower().split()]
    if missing:
        raise RecipeError(
            f"every caption must name the concept by its token {token!r} (--token); "
            f"{len(missing)} do not, e.g. {missing[0]!r}"
        )
    return torch.stack([image for image, _ in items]), captions, []


def class_prior(recipe: Recipe, model: Model, captions: list[str], run_dir: Path):
    """Prior preservation's class latents and captions, drawn by the base model: the captions
    with the token replaced by each class word in turn, or captions of random shapes-world
    scenes; kept in the run folder for a resume."""
    p = recipe.personal
    file = run_dir / "class_latents.safetensors"
    if p.class_prompts == "world":
        rngs = [np.random.default_rng([CLASS_SEED, i]) for i in range(p.class_images)]
        texts = [caption(sample_scene(rng), rng) for rng in rngs]
    else:
        words = p.class_words or ("",)
        texts = []
        for i in range(p.class_images):
            word = words[(i // len(captions)) % len(words)]
            text = captions[i % len(captions)].split()
            texts.append(" ".join(word if w == p.token else w for w in text))
        texts = [" ".join(t.split()) for t in texts]
    if file.is_file():
        return load_file(str(file))["latents"], texts
    pipe = model.pipeline()
    chunks = []
    for start in range(0, len(texts), pipe.rows):
        part = texts[start : start + pipe.rows]
        seeds = range(CLASS_SEED + start, CLASS_SEED + start + len(part))
        chunks.append(pipe.sample(part, seeds=list(seeds), options=recipe.sampling))
    latents = torch.cat(chunks).cpu().contiguous()
    write_atomic(file, safetensors_bytes({"latents": latents},
                                         metadata={"captions": json.dumps(texts)}))  # fmt: skip
    return latents, texts


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    p = recipe.personal
    if p is None:
        raise RecipeError(f"{recipe.name} is a {recipe.kind} recipe without personal settings")
    try:
        check_token(p.token)
    except ValueError as err:
        raise RecipeError(f"--token: {err}") from None
    before = process_cpu_seconds()
    model = _base(recipe)
    pixels, captions, suite = concept_data(recipe, data_dir, model.resolution)
    latents = model.pipeline().encode(pixels).cpu()  # (N, C, h, w), the diffusion space
    dataset = list(zip(latents, captions))
    train_config = replace(recipe.train, batch_size=min(recipe.train.batch_size, len(dataset)))
    model.unet.requires_grad_(False)
    model.text_encoder.requires_grad_(False)
    prior, trained = None, {}
    if recipe.kind in ("lora", "dreambooth") and p.prior_weight > 0:
        # Drawn before any adapter is attached: the base model's own pictures of the class.
        prior = class_prior(recipe, model, captions, run_dir)
    if recipe.kind == "lora":
        network = LoRANetwork.create(model.adapter_parts(), p.lora).attach(1.0)
        trained = {"lora": network}
    elif recipe.kind == "dreambooth":
        trained = {"unet": model.unet.requires_grad_(True)}
    elif recipe.kind == "textual-inversion":
        try:
            learned = model.text_encoder.add_tokens({p.token: model.text_encoder.word_embedding(
                p.init_word)})  # fmt: skip
        except ValueError as err:
            raise RecipeError(f"textual inversion: {err}") from None
        trained = {"embeddings": learned.requires_grad_(True)}
    else:
        raise RecipeError(f"unknown personalisation {recipe.kind!r}; valid: lora, dreambooth, "
                          "textual-inversion")  # fmt: skip
    task = PersonalTask(
        trained=trained, concept_prompts=suite[:: max(len(suite) // SAMPLE_PROMPTS, 1)],
        prior=prior, prior_weight=p.prior_weight, unet=model.unet,
        text_encoder=model.text_encoder, diffusion=model.config.diffusion,
        objective=recipe.objective, latent_shape=model.config.latent_shape, vae=model.vae,
        latent_space=model.config.latent_space, sample_prompts=captions[:SAMPLE_PROMPTS],
        sample_options=recipe.sampling,
    )  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, dataset, train_config, run_dir=run_dir, resume=resume, callbacks=[ledger])
    for name, module in trained.items():
        final_weights(run_dir, name, module)
    return _export(recipe, model, trained, run_dir, command, ledger.total, len(dataset))


def _base(recipe: Recipe) -> Model:
    name = recipe.personal.base
    try:
        return load_model(name, want=diffusion.KIND)
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(
            f"{recipe.name} teaches the diffusion model base={name!r}, which "
            f"cannot be loaded ({err}); give one with --base NAME"
        ) from None


def _card(recipe: Recipe, command: str, cpu: float, images: int, what: str, use: str) -> str:
    p = recipe.personal
    body = (
        f"{what} teaching {p.base} the concept named {p.token!r} from {images} images.\n\n"
        f"- Use it: {use}\n\n## Training cost\n\n- this run: {cpu / 60:.1f} CPU-min "
        f"({cpu / 3600:.3f} CPU-h), the base model's own cost apart"
    )
    return model_card(recipe.name, command=command, init_from=p.base,
                      cpu=f"{cpu / 3600:.3f} h for this run", body=body,
                      recipe=asdict(recipe))  # fmt: skip


def _export(recipe: Recipe, model: Model, trained: dict, run_dir: Path, command: str,
            cpu: float, images: int) -> Path:  # fmt: skip
    p, name = recipe.personal, recipe.name
    info = {"kind": recipe.kind, "base": p.base, "token": p.token, "images": images,
            "cpu_seconds": round(cpu, 1)}  # fmt: skip
    if recipe.kind == "lora":
        use = f"`atelier generate \"a red {p.token}\" --model {p.base} --lora {name}:1` or " \
              f"`<lora:{name}:1>` in a prompt"  # fmt: skip
        card = _card(recipe, command, cpu, images, "A LoRA", use)
        folder = adapters.save_lora(trained["lora"], run_dir / "lora", name=name, card=card,
                                    info={**info, "lora": asdict(p.lora)})  # fmt: skip
        return adapters.install(folder, adapters.loras_dir(), name)
    if recipe.kind == "textual-inversion":
        use = f"`atelier generate \"a red {p.token}\" --model {p.base} --embedding {name}` (or " \
              "just the word: installed embeddings load by their word)"  # fmt: skip
        card = _card(recipe, command, cpu, images, "A textual-inversion embedding", use)
        folder = adapters.save_embeddings(trained["embeddings"], run_dir / "embedding",
                                          card=card, info=info)  # fmt: skip
        return adapters.install(folder, adapters.embeddings_dir(), name)
    use = f'`atelier generate "a red {p.token}" --model {name}`'
    card = _card(recipe, command, cpu, images, "A DreamBooth fine-tune", use)
    config = replace(model.config, name=name, defaults=model.config.defaults)
    tuned = Model(config, model.unet.eval(), model.text_encoder, model.vae)
    return save_model(tuned, run_dir / "model", card=card)
