"""Train a KL autoencoder (``kind = "vae"``), with an optional patch discriminator."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.eval.autoencoder import judge_reconstructions, quality_section
from atelier.kinds.autoencoder import TrainedAutoencoder, load_vae, save_autoencoder
from atelier.kinds.card import model_card
from atelier.models.discriminator import PatchDiscriminator
from atelier.models.vae import AutoencoderKL
from atelier.shapes.bench import load_suite
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.recipe import Recipe
from atelier.training.recipe_data import (
    held_out_pictures,
    held_out_scenes,
    recipe_images,
    trained_on,
)
from atelier.training.vae_loss import measure_scale_factor
from atelier.training.vae_task import VAETask


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    images = recipe_images(recipe, data_dir)
    vae = AutoencoderKL(recipe.vae)
    discriminator = None
    if recipe.vae_loss.adversarial_weight > 0:
        discriminator = PatchDiscriminator(recipe.discriminator)
    samples = torch.stack([images[i][0] for i in range(8)])
    task = VAETask(vae, recipe.vae_loss, discriminator=discriminator, sample_images=samples)
    ledger = CPULedger()
    train(task, images, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "vae", vae)
    vae.eval()
    if recipe.data.source == "shapes":
        held_out = held_out_scenes(256, recipe.data.resolution)
        x = torch.stack([held_out[i][0] for i in range(len(held_out))])
        body = _shapes_metrics(vae, x, recipe.data.resolution)
    else:
        x, body = _real_metrics(vae, recipe, data_dir)
        if x is None:
            x = torch.stack([images[i][0] for i in range(min(256, len(images)))])
    scale = measure_scale_factor(vae, x[:256])
    gap = "\n" if recipe.data.source == "shapes" else "\n\n"  # after a list, or a table
    body += f"{gap}- latent scale factor (1 / std of latents): {scale:.4f}"
    card = model_card(recipe.name, command=command, init_from=recipe.init_from,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                      body=body, recipe=asdict(recipe),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    return save_autoencoder(TrainedAutoencoder(recipe.name, vae, scale), run_dir / "model",
                            card=card)  # fmt: skip


def _shapes_metrics(vae: AutoencoderKL, x: torch.Tensor, size: int) -> str:
    """PSNR on held-out renders ``x`` and the judge's ceiling through the autoencoder."""
    with torch.no_grad():
        x_tilde = vae.round_trip(x)
    mse = float(((x - x_tilde) / 2).pow(2).mean())
    psnr = 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    ceiling = judge_reconstructions(vae, load_suite(), size=size)
    return (
        f"## Metrics ({len(x)} held-out renders, any split)\n\n- reconstruction PSNR: "
        f"{psnr:.2f} dB"
        f"\n- judge pass rate on reconstructions of fresh renders of all {ceiling.images} "
        f"shapes-bench specs (the ceiling of any model decoding through it): "
        f"{ceiling.judge_pass:.3f}, PSNR {ceiling.psnr:.2f} dB"
    )


def _real_metrics(vae: AutoencoderKL, recipe: Recipe,
                  data_dir: Path | None) -> tuple[torch.Tensor | None, str]:  # fmt: skip
    """PSNR and SSIM on the real set's held-out pictures (beside ``--data DIR/train``, or the
    cached set's), and the shipped shapes-vae's on the same for comparison."""
    held = held_out_pictures(recipe, data_dir)
    if held is None:
        return None, "## Metrics\n\nNo held-out folder beside --data: not measured."
    folder, x = held
    compare = {}
    try:
        compare["shapes-vae"] = load_vae("shapes-vae")[0]
    except (FileNotFoundError, ValueError):
        pass
    return x, quality_section(vae, recipe.name, x, where=str(folder), compare=compare)
