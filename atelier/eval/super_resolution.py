"""How well an upscaler restores held-out renders: PSNR and SSIM against the true high-resolution
render, beside bicubic upsampling (with and without the same consistency projection)."""

from __future__ import annotations

import numpy as np
import torch

from atelier.data.base import array_to_tensor, tensor_to_pil
from atelier.data.shapes import ShapesDataset
from atelier.diffusion.super_resolution import degrade, project_to_low, upsample
from atelier.eval.image_quality import psnr, ssim
from atelier.pipelines.upscale import Upscaler


def upscaler_scores(
    upscaler: Upscaler, *, n: int = 64, seed: int = 10_000
) -> dict[str, tuple[float, float]]:
    """PSNR and SSIM against the true high-resolution render, for the model and for bicubic
    upsampling, on ``n`` held-out scenes (any split)."""
    c = upscaler.config
    data = ShapesDataset(n, resolution=c.high, seed=seed, split="any")
    hi = torch.stack([data[i][0] for i in range(n)])
    lo = degrade(hi, c.low)
    lo_images = [tensor_to_pil(x) for x in lo]
    model = torch.stack([array_to_tensor(np.asarray(im))
                         for im in upscaler(lo_images, seeds=range(n))])  # fmt: skip
    lo_q = torch.stack([array_to_tensor(np.asarray(im)) for im in lo_images])
    bicubic = upsample(lo_q, c.high)
    # Bicubic made consistent with the input the same way: the projection alone, no model.
    projected = project_to_low(bicubic, lo_q).clamp(-1, 1)

    def unit(x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2

    return {
        "diffusion upscaler": (float(psnr(unit(model), unit(hi)).mean()),
                               float(ssim(unit(model), unit(hi)).mean())),
        "bicubic": (float(psnr(unit(bicubic), unit(hi)).mean()),
                    float(ssim(unit(bicubic), unit(hi)).mean())),
        "bicubic + projection": (float(psnr(unit(projected), unit(hi)).mean()),
                                 float(ssim(unit(projected), unit(hi)).mean())),
    }  # fmt: skip
