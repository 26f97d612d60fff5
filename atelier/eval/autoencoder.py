"""How much of the shapes world an autoencoder keeps: the judge on its reconstructions.

A latent diffusion model can only draw what its decoder can: if the judge fails a reconstruction
of a true render, no generation through that decoder can pass either. This is that ceiling,
measured on fresh renders of every shapes-bench spec, with PSNR for the pixel view. The same
holds for an image tokenizer and the token models that draw through its decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from atelier.data.base import array_to_tensor, tensor_to_array
from atelier.shapes.bench import BenchPrompt
from atelier.shapes.judge import judge
from atelier.shapes.render import render
from atelier.shapes.scene import realize


class RoundTrip(Protocol):
    """An autoencoder of any family: the KL autoencoder, an image tokenizer."""

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> their reconstructions, same shape and range."""
        ...


@dataclass(frozen=True)
class ReconstructionReport:
    judge_pass: float  # fraction of reconstructions the judge passes against their spec
    psnr: float  # dB over all reconstructions, images in [0, 1]
    images: int


@torch.no_grad()
def judge_reconstructions(
    model: RoundTrip,
    suite: Sequence[BenchPrompt],
    *,
    size: int = 64,
    seed: int = 0,
    batch: int = 32,
) -> ReconstructionReport:
    """Render each spec, encode and decode it (``model.round_trip``), judge the result."""
    rng = np.random.default_rng(seed)
    renders = [render(realize(bp.spec, rng), size) for bp in suite]
    passed, squared = 0, 0.0
    for start in range(0, len(renders), batch):
        x = torch.stack([array_to_tensor(px) for px in renders[start : start + batch]])
        x_tilde = model.round_trip(x).clamp(-1, 1)
        squared += float(((x - x_tilde) / 2).pow(2).sum())
        for bp, img in zip(suite[start : start + batch], x_tilde):
            passed += judge(tensor_to_array(img), bp.spec).passed
    mse = squared / (len(renders) * 3 * size * size)
    return ReconstructionReport(passed / len(renders), float(10 * np.log10(1 / mse)), len(renders))


@dataclass(frozen=True)
class ReconstructionQuality:
    """Mean PSNR (dB) and SSIM of round trips of real images, each averaged per image first
    (images in [0, 1]), with their spread over images."""

    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    images: int


@torch.no_grad()
def reconstruction_quality(model: RoundTrip, images: torch.Tensor, *,
                           batch: int = 32) -> ReconstructionQuality:  # fmt: skip
    """PSNR and SSIM (``eval/image_quality.py``) of ``model``'s round trips of ``images``
    (N, 3, H, W) in [-1, 1], say the held-out pictures of a real data set."""
    from atelier.eval.image_quality import psnr, ssim

    if len(images) < 1:
        raise ValueError("reconstruction quality needs at least one image")
    p, s = [], []
    for start in range(0, len(images), batch):
        x = images[start : start + batch]
        x_tilde = model.round_trip(x).clamp(-1, 1)
        a, b = (x + 1) / 2, (x_tilde + 1) / 2
        p.append(psnr(a, b))
        s.append(ssim(a, b))
    p_all, s_all = torch.cat(p), torch.cat(s)
    spread = (lambda v: float(v.std())) if len(images) > 1 else (lambda v: 0.0)
    return ReconstructionQuality(float(p_all.mean()), spread(p_all), float(s_all.mean()),
                                 spread(s_all), len(images))  # fmt: skip


def quality_section(model: RoundTrip, name: str, images: torch.Tensor, *, where: str,
                    compare: dict[str, RoundTrip]) -> str:  # fmt: skip
    """A card's section: PSNR and SSIM of ``model``'s round trips of held-out ``images`` (from
    ``where``), beside those of the models in ``compare`` (say the shipped ones) on the same."""
    rows = [(name, reconstruction_quality(model, images))]
    rows += [(f"{other} (for comparison)", reconstruction_quality(net, images))
             for other, net in compare.items()]  # fmt: skip
    table = "\n".join(f"| {n} | {q.psnr:.2f} | {q.ssim:.4f} |" for n, q in rows)
    return (
        f"## Metrics ({len(images)} held-out pictures, {where})\n\nPer image in [0, 1], then "
        f"averaged (`atelier.eval.autoencoder.reconstruction_quality`):\n\n"
        f"| autoencoder | PSNR dB | SSIM |\n|---|---|---|\n{table}"
    )
