"""Train a CLIP (``kind = "clip"``): contrastive image-text training, from scratch or fine-tuned,
with hard negatives where the recipe asks for them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.eval.clip_metrics import retrieval_recall, zero_shot_accuracy
from atelier.eval.shapes_probe import (
    binding_accuracy,
    single_object_probe,
    swapped_colour_cosine,
)
from atelier.kinds.card import cost, model_card
from atelier.kinds.clip import save_clip
from atelier.models.clip import CLIP
from atelier.text.factory import build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.clip_task import CLIPTask
from atelier.training.fine_tune import clip_to_fine_tune
from atelier.training.loop import train
from atelier.training.recipe_data import captions, held_out_scenes, recipe_images, with_negatives
from atelier.training.recipes import Recipe


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    images = recipe_images(recipe, data_dir)
    torch.manual_seed(recipe.train.seed)
    if recipe.init_from is not None:
        clip = clip_to_fine_tune(recipe)
    else:
        tokenizer = None
        if recipe.text_encoder.kind == "transformer":
            tokenizer = train_bpe(captions(images), vocab_size=recipe.bpe_vocab)
        clip = CLIP(recipe.clip, build_text_encoder(recipe.text_encoder, tokenizer=tokenizer))
    size = recipe.clip.vision.image_size
    task = CLIPTask(clip, probe=single_object_probe(5, size=size))
    ledger = CPULedger()
    data = with_negatives(recipe, images)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "clip", clip)
    clip.eval()
    images_, labels, truth = single_object_probe(20, size=size)
    accuracy = zero_shot_accuracy(clip, images_, labels, truth)
    held_out = held_out_scenes(500, recipe.data.resolution)
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    recall = retrieval_recall(clip, x, [held_out[i][1] for i in range(len(held_out))])
    binding = binding_accuracy(clip, scenes=2000, size=recipe.data.resolution)
    base = recipe.init_from
    section, cpu = cost(recipe.name, ledger.total, trained="image and text towers", base=base,
                        what=f"the model it fine-tunes, {base}")  # fmt: skip
    body = section + (
        f"\n\n## Metrics\n\n- zero-shot accuracy, 18 classes (colour x shape), 20 fresh renders "
        f"each: {accuracy:.3f}\n- retrieval on 500 fresh scenes (any split), recall: "
        + ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
        + "\n- true caption above a hard negative (one fact changed), 2,000 fresh scenes: "
        + ", ".join(f"{k} {v:.3f}" for k, v in binding.items())
        + "\n- text cosine of a two-object caption and its colour-swapped twin (90 pairs): "
        + f"{swapped_colour_cosine(clip):.4f}"
    )
    card = model_card(recipe.name, command=command, init_from=base, cpu=cpu, body=body,
                      recipe=asdict(recipe))  # fmt: skip
    return save_clip(clip, recipe.text_encoder, run_dir / "model", card=card)
