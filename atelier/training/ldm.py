"""The denoising objective of latent (or pixel-space) text-to-image diffusion, as a training task.

Per batch of (z_0, caption): drop captions to "" with probability ``p_uncond`` (so the same network
learns the unconditional model classifier-free guidance needs; Ho & Salimans 2022), encode them,
draw t ~ U{0, T-1} and eps ~ N(0, I), form z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps and
regress the network output on the prediction target, weighted uniformly or by min-SNR-gamma.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from atelier.data.recaption import choose_captions
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.losses import Weighting, diffusion_loss, training_noise
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.parameterization import q_sample
from atelier.eval.grid import save_grid
from atelier.eval.probes import word_sensitivity
from atelier.models.latent_space import LatentSpace
from atelier.pipelines.text2image import Text2Image
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt
from atelier.text.encoder import TextEncoder
from atelier.training.task import Logs


@dataclass(frozen=True)
class LDMObjective:
    """Settings of the denoising objective."""

    p_uncond: float = 0.1
    weighting: Weighting = "min_snr"
    snr_gamma: float = 5.0
    offset_noise: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


class LatentDiffusionTask:
    """Train ``unet`` (and a trainable text encoder) to denoise latents under ``diffusion``."""

    def __init__(
        self,
        *,
        unet: nn.Module,
        text_encoder: TextEncoder,
        diffusion: DiffusionConfig,
        objective: LDMObjective = LDMObjective(),
        latent_shape: tuple[int, int, int],
        vae: nn.Module | None = None,
        latent_space: LatentSpace = LatentSpace(),
        sample_prompts: Sequence[str] = (),
        sample_options: SamplingOptions = SamplingOptions(),
        sample_scores: SampleScores | None = None,
    ) -> None:
        """``sample_scores`` measures each sample grid (default: the shapes judge's pass rate
        and whether position words are read; ``training/real_samples.py`` has others)."""
        self.unet = unet
        self.text_encoder = text_encoder
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.diffusion = diffusion
        self.objective = objective
        self.latent_shape = latent_shape
        self.latent_space = latent_space
        self.sample_prompts = list(sample_prompts)
        self.sample_options = sample_options
        self.sample_scores = sample_scores if sample_scores is not None else shapes_sample_scores
        self.abar = diffusion.alphas_cumprod()

    def modules(self) -> dict[str, nn.Module]:
        trained = {"unet": self.unet}
        if self.text_encoder.trainable:
            trained["text_encoder"] = self.text_encoder
        return trained

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        z0, captions = batch
        return self.denoising_loss(z0, captions)

    def denoising_loss(
        self, z0: torch.Tensor, captions: Sequence[str], inputs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Logs]:
        """The objective on clean latents ``z0``; ``inputs`` (B, E, h, w), when given, are
        concatenated to the network's input (inpainting's mask and masked latents)."""
        b = z0.shape[0]
        captions = choose_captions(captions)
        drop = torch.rand(b) < self.objective.p_uncond
        prompts = ["" if d else c for c, d in zip(captions, drop.tolist())]
        context = self.text_encoder.encode(prompts)
        t = torch.randint(0, self.diffusion.n_train, (b,), device=z0.device)
        noise = training_noise(z0, offset=self.objective.offset_noise)
        abar_t = self.abar.to(z0.device)[t]
        z_t = q_sample(z0, abar_t, noise)
        x = z_t if inputs is None else torch.cat([z_t, inputs], dim=1)
        output = self.unet(x, t.to(z0.dtype), context)
        per_image = diffusion_loss(
            output.float(), z0.float(), noise.float(), t, self.abar,
            prediction_type=self.diffusion.prediction_type,
            weighting=self.objective.weighting, snr_gamma=self.objective.snr_gamma,
            reduction="none",
        )  # fmt: skip
        return per_image.mean(), {"t": t.detach().cpu(), "loss": per_image.detach().cpu()}

    def pipeline(self) -> Text2Image:
        return Text2Image(
            network=self.unet, text_encoder=self.text_encoder, diffusion=self.diffusion,
            latent_shape=self.latent_shape, autoencoder=self.vae, latent_space=self.latent_space,
        )  # fmt: skip

    def sample(self, step: int, out_dir: Path) -> None:
        """A grid of the sample prompts at fixed seeds, and its scores (``sample_scores``)."""
        if not self.sample_prompts:
            return
        # The loop sets eval mode, swaps EMA weights in and restores both afterwards.
        pipe = self.pipeline()
        prompts = self.sample_prompts
        images = pipe(prompts, seeds=range(len(prompts)), options=self.sample_options)
        save_grid(images, out_dir / f"samples-{step:07d}.png", captions=prompts,
                  title=f"step {step}")  # fmt: skip
        record = {"step": step, "n": len(images), **self.sample_scores(pipe, images, prompts)}
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


# What a sample grid is measured by: (the pipeline that drew it, diffusion's or a token
# model's, its images, their prompts) -> named numbers.
SampleScores = Callable[[Any, Sequence[Image.Image], Sequence[str]], dict[str, float]]


def shapes_sample_scores(pipe: Text2Image, images: Sequence[Image.Image],
                         prompts: Sequence[str]) -> dict[str, float]:  # fmt: skip
    """The shapes judge's pass rate on the grid, and whether position words are read at all
    (``eval/probes.py``; sampling alone hides it)."""
    passed = [judge(np.asarray(img), parse_prompt(p)).passed for img, p in zip(images, prompts)]
    words = word_sensitivity(pipe)
    return {"judge_pass": float(np.mean(passed)),
            "position_vs_colour": round(words.position_vs_colour, 4)}  # fmt: skip


def judged_samples(
    pipe: Text2Image, prompts: Sequence[str], options: SamplingOptions
) -> tuple[list[Image.Image], float]:
    """The prompts drawn at seeds 0, 1, ... and the share of them the shapes judge passes."""
    images = pipe(prompts, seeds=range(len(prompts)), options=options)
    passed = [judge(np.asarray(img), parse_prompt(p)).passed for img, p in zip(images, prompts)]
    return images, float(np.mean(passed))


# A cell holds an object when the mean distance of its centre's latents from the image's median
# latent (the background) exceeds this. Measured on shapes-vae latents in the diffusion space,
# 256 scenes: occupied cells 1.52 to 9.74 (median 3.87), empty ones at most 0.96; every cell
# classified right. 2.2 ms per batch of 64, beside a training step of about 1.2 s.
OCCUPIED_CELL_THRESHOLD = 1.3


def _cell_bounds(h: int, w: int, cell: int) -> tuple[int, int, int, int]:
    r, c = divmod(cell, 3)
    return r * h // 3, (r + 1) * h // 3, c * w // 3, (c + 1) * w // 3


def occupied_cells(z0: torch.Tensor, threshold: float = OCCUPIED_CELL_THRESHOLD) -> torch.Tensor:
    """(B, 9) bool: which cells of the 3 x 3 grid hold something other than background, read off
    the latents (B, C, h, w): the centre of each cell against the image's median latent."""
    b, _, h, w = z0.shape
    background = z0.flatten(2).median(-1).values[..., None, None]
    distance = (z0 - background).norm(dim=1)
    out = torch.zeros(b, 9, dtype=torch.bool, device=z0.device)
    for cell in range(9):
        y0, y1, x0, x1 = _cell_bounds(h, w, cell)
        m = 1 if min(y1 - y0, x1 - x0) > 2 else 0  # the centre: one latent pixel in from the edge
        centre = distance[:, y0 + m : y1 - m, x0 + m : x1 - m]
        out[:, cell] = centre.mean((1, 2)) > threshold
    return out


def random_keep_masks(
    b: int,
    h: int,
    w: int,
    *,
    occupied: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(B, 1, h, w) keep masks (1 = known) for inpainting training, a mix of the edits people
    make: a random rectangle (30%), one cell of the 3 x 3 grid that holds an object, so the
    caption names what the model must paint there (25%; SmartBrush's object masks, Xie et al.
    2023; ``occupied`` (B, 9) from :func:`occupied_cells`, a random cell where none is), one or
    two random cells (15%), a border strip as in outpainting (20%), and everything to paint,
    i.e. text-to-image (10%)."""
    keep = torch.ones(b, 1, h, w, device=device)
    kinds = torch.rand(b)
    for i in range(b):
        k = float(kinds[i])
        if k < 0.3:
            y0, x0 = int(torch.randint(0, h - 1, (1,))), int(torch.randint(0, w - 1, (1,)))
            y1 = y0 + int(torch.randint(2, h - y0 + 1, (1,)))
            x1 = x0 + int(torch.randint(2, w - x0 + 1, (1,)))
            keep[i, :, y0:y1, x0:x1] = 0
        elif k < 0.7:
            full = occupied[i].nonzero().flatten().tolist() if occupied is not None else []
            if k < 0.55 and full:
                cells = [full[int(torch.randint(0, len(full), (1,)))]]
            else:
                cells = torch.randperm(9)[: int(torch.randint(1, 3, (1,)))].tolist()
            for cell in cells:
                y0, y1, x0, x1 = _cell_bounds(h, w, cell)
                keep[i, :, y0:y1, x0:x1] = 0
        elif k < 0.9:
            side, width = (
                int(torch.randint(0, 4, (1,))),
                int(torch.randint(1, max(2, h // 2), (1,))),
            )
            if side == 0:
                keep[i, :, :width] = 0
            elif side == 1:
                keep[i, :, -width:] = 0
            elif side == 2:
                keep[i, :, :, :width] = 0
            else:
                keep[i, :, :, -width:] = 0
        else:
            keep[i] = 0
    return keep


class InpaintingTask(LatentDiffusionTask):
    """Stable Diffusion's inpainting objective: the UNet also sees the mask and the masked
    latents, (z_t, 1 - keep, keep * z_0) concatenated: 2 C + 1 input channels."""

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        z0, captions = batch
        b, c, h, w = z0.shape
        if self.unet.config.in_channels != 2 * c + 1:
            raise ValueError(f"an inpainting UNet takes {2 * c + 1} input channels")
        keep = random_keep_masks(b, h, w, occupied=occupied_cells(z0), device=z0.device)
        return self.denoising_loss(z0, captions, torch.cat([1 - keep, keep * z0], dim=1))

    def sample(self, step: int, out_dir: Path) -> None:
        """Inpainting models are judged by the editing benchmark, not text-to-image grids."""
