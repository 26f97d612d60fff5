"""Train a CLIP (``kind = "clip"``): contrastive image-text training, from scratch or fine-tuned,
with hard negatives where the recipe asks for them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.data.augment import affine_jitter
from atelier.data.base import fit_images
from atelier.data.folder import ImageFolderDataset
from atelier.data.real import BACKGROUND, labels, metadata_rows
from atelier.eval.clip_metrics import r_precision, retrieval_recall, zero_shot_accuracy
from atelier.eval.emoji import category_accuracy, category_label
from atelier.eval.shapes_probe import (
    binding_accuracy,
    single_object_probe,
    swapped_colour_cosine,
)
from atelier.kinds.card import cost, model_card
from atelier.kinds.clip import save_clip
from atelier.models.clip import CLIP
from atelier.paths import home
from atelier.text.factory import build_text_encoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.clip_task import CLIPTask
from atelier.training.fine_tune import clip_to_fine_tune
from atelier.training.loop import train
from atelier.training.recipe import Recipe
from atelier.training.recipe_data import (
    captions,
    held_out_half,
    held_out_scenes,
    recipe_images,
    trained_on,
    with_negatives,
)


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
    real = recipe.data.source != "shapes"
    held = _held_out(recipe, data_dir) if real else None
    if real:
        probe = None if held is None else _category_probe(held, size)
    else:
        probe = single_object_probe(5, size=size)
    augment = None
    if recipe.data.augment:
        augment = affine_jitter(recipe.train.seed, background=BACKGROUND[recipe.data.source])
    task = CLIPTask(clip, probe=probe, augment=augment)
    before = process_cpu_seconds()
    if isinstance(clip.text, MiniLMTextEncoder):
        # A frozen tower reads each caption once per machine (text/state_cache.py), not once
        # per pass; what this process reads counts as training.
        texts = captions(images) + (probe[1] if probe is not None else [])
        preload_text_states(clip.text, texts, home() / "data")
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    data = with_negatives(recipe, images)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "clip", clip)
    clip.eval()
    base = recipe.init_from
    section, cpu = cost(recipe.name, ledger.total, trained="image and text towers", base=base,
                        what=f"the model it fine-tunes, {base}")  # fmt: skip
    metrics = _real_metrics(clip, held) if real else _shapes_metrics(clip, recipe)
    card = model_card(recipe.name, command=command, init_from=base, cpu=cpu,
                      body=section + metrics, recipe=asdict(recipe),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    return save_clip(clip, recipe.text_encoder, run_dir / "model", card=card)


def _shapes_metrics(clip: CLIP, recipe: Recipe) -> str:
    size = recipe.clip.vision.image_size
    images_, labels, truth = single_object_probe(20, size=size)
    accuracy = zero_shot_accuracy(clip, images_, labels, truth)
    held_out = held_out_scenes(500, recipe.data.resolution)
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    recall = retrieval_recall(clip, x, [held_out[i][1] for i in range(len(held_out))])
    binding = binding_accuracy(clip, scenes=2000, size=recipe.data.resolution)
    return (
        f"\n\n## Metrics\n\n- zero-shot accuracy, 18 classes (colour x shape), 20 fresh renders "
        f"each: {accuracy:.3f}\n- retrieval on 500 fresh scenes (any split), recall: "
        + ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
        + "\n- true caption above a hard negative (one fact changed), 2,000 fresh scenes: "
        + ", ".join(f"{k} {v:.3f}" for k, v in binding.items())
        + "\n- text cosine of a two-object caption and its colour-swapped twin (90 pairs): "
        + f"{swapped_colour_cosine(clip):.4f}"
    )


def _held_out(recipe: Recipe, data_dir: Path | None) -> ImageFolderDataset | None:
    """The real set's held-out pictures, at the recipe's side."""
    folder = held_out_half(recipe, data_dir)
    if folder is None:
        print("note: no heldout/ beside --data; the card states no held-out scores")
        return None
    return ImageFolderDataset(folder, resolution=recipe.data.resolution)


def _category_probe(held: ImageFolderDataset, size: int):
    """Zero-shot category classification of the held-out pictures, for the sample steps' log
    (emoji: each picture's category; digits: the digit)."""
    key = "category" if "category" in metadata_rows(held.root).get(held.item_name(0), {}) else None
    if key is None:
        return None
    categories = labels(held, key)
    present = sorted(set(categories))
    x = torch.stack([held[i][0] for i in range(len(held))])
    return (fit_images(x, size), [category_label(c) for c in present],
            [present.index(c) for c in categories])  # fmt: skip


def _real_metrics(clip: CLIP, held: ImageFolderDataset | None) -> str:
    """R-precision of names, caption retrieval and zero-shot category accuracy on the held-out
    pictures: names no training run saw."""
    if held is None:
        return "\n\n## Metrics\n\nNo held-out pictures: not measured."
    x = torch.stack([held[i][0] for i in range(len(held))])
    texts = [held[i][1] for i in range(len(held))]
    rows = metadata_rows(held.root).get(held.item_name(0), {})
    lines = [f"\n\n## Metrics ({len(held)} held-out pictures: names no training run saw)\n"]
    if "name" in rows:
        names = labels(held, "name")
        r = r_precision(clip, x, names)
        lines.append(f"- R-precision of the picture's name among {r.candidates} held-out names "
                     f"(its own and {r.candidates - 1} others at random): {r.value:.3f} (chance "
                     f"{r.chance:.3f})")  # fmt: skip
    recall = retrieval_recall(clip, x, texts)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
    lines.append(f"- caption retrieval among the held-out captions, recall: {shown}")
    if "category" in rows:
        c = category_accuracy(clip, x, labels(held, "category"))
        lines.append(f"- zero-shot category accuracy among {c.categories} categories: "
                     f"{c.accuracy:.3f}, balanced {c.balanced:.3f} (chance {c.chance:.3f}; "
                     f"always the commonest: {c.majority:.3f})")  # fmt: skip
    return "\n".join(lines)
