"""Train a text-conditional GAN (``kind = "gan"``): DF-GAN's generator against its joint
discriminator, with mismatched captions and the shapes world's hard negatives as negatives.

The model folder keeps the generator (its EMA weights) and the text encoder; the discriminator
stays in the run's checkpoints. A collapse probe (256 held-out scenes, their features from
shapes-features if it is installed, else shapes-clip's image tower) gives precision and recall
at every sample step and on the card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from atelier.data.hard_negatives import WithNegatives
from atelier.eval.clip_metrics import CLIPImageFeatures
from atelier.eval.fid import Resized
from atelier.kinds.card import METRICS_TODO, cost, model_card
from atelier.kinds.clip import load_clip
from atelier.kinds.features import load_feature_net
from atelier.kinds.gan import GANModel, save_gan
from atelier.models.gan_discriminator import JointDiscriminator
from atelier.models.gan_generator import FusionGenerator
from atelier.paths import home
from atelier.shapes.bench import load_suite
from atelier.text.factory import build_text_encoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.gan_task import CollapseProbe, GANTask
from atelier.training.loop import train
from atelier.training.recipe_data import (
    captions,
    held_out_scenes,
    recaptioned,
    recipe_images,
    with_negatives,
)
from atelier.training.recipes import Recipe, RecipeError

SAMPLE_PROMPTS = 48
PROBE_SCENES = 256


def collapse_probe(resolution: int) -> tuple[CollapseProbe | None, str]:
    """Held-out scenes and the best installed feature extractor, and its name ("" for none)."""
    held_out = held_out_scenes(PROBE_SCENES, resolution)
    images = torch.stack([held_out[i][0] for i in range(len(held_out))])
    texts = [held_out[i][1] for i in range(len(held_out))]
    try:
        net = load_feature_net("shapes-features")
        return CollapseProbe(images, texts, Resized(net, net.config.image_size)), "shapes-features"
    except (FileNotFoundError, ValueError):
        pass
    try:
        clip = load_clip("shapes-clip")
        return CollapseProbe(images, texts, CLIPImageFeatures(clip)), "shapes-clip image tower"
    except (FileNotFoundError, ValueError):
        return None, ""


def _last_probe(run_dir: Path) -> dict | None:
    file = run_dir / "samples" / "samples.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()] if file.is_file() else []
    probed = [row for row in rows if "precision" in row]
    return probed[-1] if probed else None


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    if recipe.generator is None or recipe.joint_discriminator is None:
        raise RecipeError(f"{recipe.name} names no generator or joint_discriminator sizes")
    if recipe.text_encoder is None:
        raise RecipeError(f"{recipe.name} names no text_encoder")
    images = recipe_images(recipe, data_dir)
    data = recaptioned(recipe, images, images)
    negatives: list[str] = []
    if recipe.data.hard_negatives:
        per_scene = with_negatives(recipe, images).negatives
        data = WithNegatives(data, per_scene)
        negatives = [text for texts in per_scene for text in texts]
    tokenizer = None
    if recipe.text_encoder.kind == "transformer":
        tokenizer = train_bpe(captions(data), vocab_size=recipe.bpe_vocab)
    torch.manual_seed(recipe.train.seed)
    text_encoder = build_text_encoder(recipe.text_encoder, tokenizer=tokenizer)
    side = recipe.data.resolution
    generator = FusionGenerator(replace(recipe.generator, resolution=side,
                                        sentence_dim=text_encoder.pooled_dim,
                                        word_dim=text_encoder.dim))  # fmt: skip
    discriminator = JointDiscriminator(replace(recipe.joint_discriminator, resolution=side,
                                               sentence_dim=text_encoder.pooled_dim))  # fmt: skip
    prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
    probe, extractor = collapse_probe(side)
    if probe is None:
        print("note: neither shapes-features nor shapes-clip is installed; no collapse probe")
    # The data preparation this process does (text states not yet on disk) counts as training.
    before = process_cpu_seconds()
    if isinstance(text_encoder, MiniLMTextEncoder):
        probed = probe.captions if probe is not None else []
        preload_text_states(text_encoder, ["", *captions(data), *negatives, *prompts, *probed],
                            home() / "data")  # fmt: skip
    task = GANTask(generator, discriminator, text_encoder, objective=recipe.gan_objective,
                   sample_prompts=prompts, sample_options=recipe.gan_sampling,
                   probe=probe)  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    result = train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "generator", generator)
    if text_encoder.trainable:
        final_weights(run_dir, "text_encoder", text_encoder)
    section, cpu = cost(recipe.name, ledger.total, trained="generator and discriminator")
    config = generator.config
    attention = config.attention_resolutions
    words = (
        f"word attention at {', '.join(map(str, attention))} px"
        if attention
        else "no word attention"
    )
    section += (
        f"\n\n## GAN\n\n- DF-GAN generator, {side} px, width K = {config.channels}, z of "
        f"{config.z_dim}, {sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M "
        f"parameters, {words}\n"
        f"- {recipe.text_encoder.kind} text encoder; trained {result.step} steps against a joint "
        f"discriminator with {recipe.gan_objective.penalty}, hard negatives per scene: "
        f"{recipe.data.hard_negatives}, augmentation: "
        f"{', '.join(recipe.gan_objective.augment) or 'none'}\n"
        f"- sampling defaults: {recipe.gan_sampling.summary()}"
    )
    last = _last_probe(run_dir)
    if last is not None:
        section += (
            f"\n- collapse probe at step {last['step']} ({last['probe_n']} held-out scenes, "
            f"{extractor} features): precision {last['precision']:.3f}, recall "
            f"{last['recall']:.3f}"
        )
    card = model_card(recipe.name, command=command, init_from=None, cpu=cpu,
                      body=section + METRICS_TODO, recipe=asdict(recipe))  # fmt: skip
    model = GANModel(recipe.name, generator.eval(), text_encoder.eval(), recipe.text_encoder,
                     recipe.gan_sampling)  # fmt: skip
    return save_gan(model, run_dir / "model", card=card)
