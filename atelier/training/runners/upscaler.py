"""Train a super-resolution upscaler (``kind = "upscaler"``) with noise conditioning
augmentation; its card measures the exported folder against bicubic."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.atomic import write_atomic
from atelier.eval.super_resolution import upscaler_scores
from atelier.kinds.card import model_card
from atelier.kinds.upscaler import UpscalerConfig, load_upscaler, save_upscaler
from atelier.models.unet import UNet
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.recipe_data import recipe_images
from atelier.training.recipes import Recipe
from atelier.training.sr_task import SuperResolutionTask


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    high, low = recipe.data.resolution, recipe.upscale_from
    data = recipe_images(recipe, None)
    torch.manual_seed(recipe.train.seed)
    unet = UNet(recipe.unet)
    task = SuperResolutionTask(
        unet, recipe.diffusion, low=low, max_aug=recipe.max_aug,
        weighting=recipe.objective.weighting, crop=recipe.sr_crop,
    )  # fmt: skip
    ledger = CPULedger()
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "unet", unet)
    config = UpscalerConfig(recipe.name, low, high, recipe.unet, recipe.diffusion,
                            max_aug=recipe.max_aug)  # fmt: skip

    def card(body: str) -> str:
        return model_card(recipe.name, command=command, init_from=recipe.init_from,
                          cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                          body=body, recipe=asdict(recipe))  # fmt: skip

    # The card measures the exported folder, loaded as every user loads it.
    out = save_upscaler(unet, config, run_dir / "model", card=card("## Metrics\n\nmeasuring"))
    n = min(64, recipe.data.n)
    scores = upscaler_scores(load_upscaler(out), n=n)
    body = f"## Metrics ({n} held-out renders)\n\n" + "\n".join(
        f"- {name}: PSNR {p:.2f} dB, SSIM {q:.4f}" for name, (p, q) in scores.items()
    )
    write_atomic(out / "README.md", card(body))
    return out
