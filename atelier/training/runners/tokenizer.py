"""Train an image tokenizer (``kind = "tokenizer"``), with an optional patch discriminator."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from atelier.eval.autoencoder import judge_reconstructions, quality_section
from atelier.kinds import tokenizer as tokenizer_kind
from atelier.kinds.card import model_card
from atelier.kinds.registry import load_model
from atelier.kinds.tokenizer import TrainedTokenizer, save_tokenizer
from atelier.models.discriminator import PatchDiscriminator
from atelier.models.quantizer import code_counts, perplexity, usage
from atelier.models.tokenizer import ImageTokenizer
from atelier.shapes.bench import load_suite
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.recipe import Recipe, RecipeError
from atelier.training.recipe_data import (
    held_out_pictures,
    held_out_scenes,
    recipe_images,
    trained_on,
)
from atelier.training.tokenizer_task import TokenizerTask


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and recipe.tokenizer.quantizer == "vq":
        # Each rank would move its own copy of the EMA codebook: they would drift apart.
        raise RecipeError(
            f"{recipe.name} keeps its codebook as moving averages, which are not synchronised "
            "across processes: train it in one process (no torchrun)"
        )
    images = recipe_images(recipe, data_dir)
    tokenizer = ImageTokenizer(recipe.tokenizer)
    discriminator = None
    if recipe.tokenizer_loss.adversarial_weight > 0:
        discriminator = PatchDiscriminator(recipe.discriminator)
    samples = torch.stack([images[i][0] for i in range(8)])
    task = TokenizerTask(tokenizer, recipe.tokenizer_loss, discriminator=discriminator,
                         sample_images=samples)  # fmt: skip
    ledger = CPULedger()
    result = train(task, images, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "tokenizer", tokenizer)
    tokenizer.eval()
    config = recipe.tokenizer
    grid = recipe.data.resolution // config.downsampling_factor
    body = (
        f"## Tokens\n\n- {grid}x{grid} codes per {recipe.data.resolution} px image "
        f"(f = {config.downsampling_factor}), codebook of {config.codebook_size} "
        f"({config.quantizer} quantizer, {config.embed_dim}-dim entries)\n"
        f"- trained {result.step} steps\n\n"
    )
    if recipe.data.source == "shapes":
        held_out = held_out_scenes(256, recipe.data.resolution)
        x = torch.stack([held_out[i][0] for i in range(len(held_out))])
        body += "## Metrics (256 held-out renders, any split)\n\n- reconstruction PSNR: "
    else:
        held = held_out_pictures(recipe, data_dir)
        x = held[1] if held is not None else torch.stack([images[i][0] for i in range(8)])
        if held is not None:
            compare = {}
            try:
                shipped = load_model("shapes-vqgan", want=tokenizer_kind.KIND)
                compare["shapes-vqgan"] = shipped.tokenizer
            except (FileNotFoundError, ValueError):
                pass
            body += quality_section(tokenizer, recipe.name, x, where=str(held[0]),
                                    compare=compare) + "\n\n"  # fmt: skip
        body += "Codes of the held-out pictures:\n\n- round-trip PSNR over all of them: "
    with torch.no_grad():
        codes = torch.cat([tokenizer.encode(chunk) for chunk in x.split(64)])
        x_tilde = torch.cat([tokenizer.decode_codes(chunk) for chunk in codes.split(64)])
    mse = float(((x - x_tilde) / 2).pow(2).mean())
    psnr = 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    counts = code_counts(codes, tokenizer.codebook_size)
    body += (
        f"{psnr:.2f} dB"
        f"\n- codebook usage: {usage(counts):.3f} of the {config.codebook_size} codes occur"
        f"\n- perplexity of the codes: {perplexity(counts):.1f}"
    )
    if recipe.data.source == "shapes":
        ceiling = judge_reconstructions(tokenizer, load_suite(), size=recipe.data.resolution)
        body += (
            f"\n- judge pass rate on round trips of fresh renders of all {ceiling.images} "
            f"shapes-bench specs (the ceiling of any token model drawing through it): "
            f"{ceiling.judge_pass:.3f}, PSNR {ceiling.psnr:.2f} dB"
        )
    card = model_card(recipe.name, command=command, init_from=recipe.init_from,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                      body=body, recipe=asdict(recipe),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    model = TrainedTokenizer(recipe.name, tokenizer, recipe.data.resolution)
    return save_tokenizer(model, run_dir / "model", card=card)
