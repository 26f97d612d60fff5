"""Train the noise-aware guides (``kind = "clip-noised"``, ``"classifier-noised"``) on a trained
diffusion model's noised latents: the recipe's ``diffusion_model`` (its autoencoder, latent
normalisation and schedule) defines what they read and which model they can steer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from atelier.data.shapes import ShapesDataset
from atelier.kinds import clip as clip_kind
from atelier.kinds import diffusion as diffusion_kind
from atelier.kinds.card import model_card
from atelier.kinds.diffusion import Model
from atelier.kinds.folder import resolve
from atelier.kinds.noised_classifier import TrainedClassifier, save_classifier
from atelier.kinds.noised_clip import TrainedNoisedCLIP, save_noised_clip
from atelier.models.noised_classifier import NoisedShapesClassifier, cell_attribute_targets
from atelier.models.noised_clip import NoisedCLIP
from atelier.models.noised_space import NoisedSpace, space_digest
from atelier.training.callbacks import CPULedger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.noised_tasks import NoisedClassifierTask, NoisedCLIPTask
from atelier.training.recipe_data import (
    base_model,
    held_out_scenes,
    model_latents,
    recipe_images,
)
from atelier.training.recipes import Recipe, RecipeError

PROBE_TIMESTEPS = (0, 250, 500, 750)


@dataclass
class NoisedData:
    """Clean latents (N, C, h, w) in the diffusion model's space, their scenes, and the space."""

    latents: torch.Tensor
    scenes: ShapesDataset
    space: NoisedSpace


class _Pairs:
    """(latent, label) items of a dataset."""

    def __init__(self, latents: torch.Tensor, labels) -> None:
        self.latents, self.labels = latents, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.latents[i], self.labels[i]


def noised_data(recipe: Recipe, data_dir: Path | None) -> tuple[Model, NoisedData]:
    """The diffusion model the recipe names, and the recipe's scenes in its space."""
    if data_dir is not None:
        raise RecipeError(f"{recipe.name} learns the shapes world's cells and captions; "
                          "drop --data")  # fmt: skip
    model = base_model(recipe, "diffusion_model", diffusion_kind.KIND, role="guides",
                       train_with="shapes-ldm-minilm")  # fmt: skip
    recipe = replace(recipe, data=replace(recipe.data, resolution=model.resolution))
    scenes = recipe_images(recipe, None)
    pipe = model.pipeline()
    shape = tuple(pipe.latent_shape)
    space = NoisedSpace(
        model.name,
        shape,
        model.config.diffusion,
        space_digest(pipe.autoencoder, pipe.latent_space, pipe.diffusion, shape),
    )
    latents = model_latents(model, scenes, cache_key=scenes.cache_key)
    return model, NoisedData(latents, scenes, space)


def _held_out(model: Model, n: int) -> tuple[torch.Tensor, ShapesDataset]:
    scenes = held_out_scenes(n, model.resolution)
    return model_latents(model, scenes, cache_key=None), scenes


def run_clip(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
             command: str) -> Path:  # fmt: skip
    before = process_cpu_seconds()
    model, data = noised_data(recipe, data_dir)
    clip = clip_kind.load_clip(recipe.clip_model)
    c, h, _ = data.space.latent_shape
    torch.manual_seed(recipe.train.seed)
    noised = NoisedCLIP(replace(recipe.noised_clip, in_channels=c, image_size=h), clip)
    task = NoisedCLIPTask(noised, model.config.diffusion)
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    captions = [data.scenes[i][1] for i in range(len(data.scenes))]
    train(task, _Pairs(data.latents, captions), recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[ledger])  # fmt: skip
    for name, module in task.modules().items():
        final_weights(run_dir, name, module)
    noised.eval()
    latents, scenes = _held_out(model, 500)
    texts = [scenes[i][1] for i in range(len(scenes))]
    with torch.no_grad():
        text = noised.encode_text(texts)
        lines = []
        for t in PROBE_TIMESTEPS:
            torch.manual_seed(t)
            abar = task.abar[t]
            z_t = abar.sqrt() * latents + (1 - abar).sqrt() * torch.randn_like(latents)
            sim = noised.encode_image(z_t, torch.full((len(texts),), float(t))) @ text.T
            ids = {k: i for i, k in enumerate(dict.fromkeys(texts))}
            keys = torch.tensor([ids[k] for k in texts])
            right = (keys[sim.argmax(1)] == keys).float().mean()
            lines.append(f"t = {t}: {float(right):.3f}")
    body = (f"## Metrics\n\nCaption retrieval among 500 fresh scenes' captions (any split), "
            f"image to text recall@1 from noised latents: {', '.join(lines)}")  # fmt: skip
    card = model_card(recipe.name, command=command, init_from=None, body=body,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions), "
                      f"beside {recipe.diffusion_model} and {recipe.clip_model}",
                      recipe=asdict(recipe))  # fmt: skip
    clip_card = resolve(recipe.clip_model) / "README.md"
    trained = TrainedNoisedCLIP(
        recipe.name,
        noised,
        data.space,
        clip_card=clip_card.read_text() if clip_card.is_file() else None,
    )
    return save_noised_clip(trained, run_dir / "model", card=card)


def run_classifier(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
                   command: str) -> Path:  # fmt: skip
    before = process_cpu_seconds()
    model, data = noised_data(recipe, data_dir)
    targets = torch.stack([cell_attribute_targets(data.scenes.spec(i))
                           for i in range(len(data.scenes))])  # fmt: skip
    c, h, _ = data.space.latent_shape
    torch.manual_seed(recipe.train.seed)
    classifier = NoisedShapesClassifier(replace(recipe.noised_classifier, in_channels=c,
                                                image_size=h))  # fmt: skip
    task = NoisedClassifierTask(classifier, model.config.diffusion)
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, _Pairs(data.latents, targets), recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[ledger])  # fmt: skip
    final_weights(run_dir, "classifier", classifier)
    classifier.eval()
    latents, scenes = _held_out(model, 1000)
    truth = torch.stack([cell_attribute_targets(scenes.spec(i)) for i in range(len(scenes))])
    lines = []
    with torch.no_grad():
        for t in PROBE_TIMESTEPS:
            torch.manual_seed(t)
            abar = task.abar[t]
            z_t = abar.sqrt() * latents + (1 - abar).sqrt() * torch.randn_like(latents)
            steps = torch.full((len(scenes),), t)
            right = (classifier(z_t, steps.float()).argmax(-1) == truth).float()
            lines.append(
                f"- t = {t}: heads {float(right.mean()):.3f}, whole images "
                f"{float(right.all(1).float().mean()):.3f}"
            )
    body = (
        "## Metrics (1000 fresh scenes, any split, noised at t)\n\nAccuracy of the 27 heads "
        "(9 cells x colour, shape, size) and of images with every head right:\n\n"
        + "\n".join(lines)
    )
    card = model_card(recipe.name, command=command, init_from=None, body=body,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions), "
                      f"beside {recipe.diffusion_model}",
                      recipe=asdict(recipe))  # fmt: skip
    trained = TrainedClassifier(recipe.name, classifier, data.space)
    return save_classifier(trained, run_dir / "model", card=card)
