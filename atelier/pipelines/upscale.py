"""Upscaling with a super-resolution diffusion model, and its model folder.

    <model>/config.json        {"kind": "upscaler", "upscaler": UpscalerConfig}
    <model>/unet.safetensors   the 6-channel, noise-level-conditioned UNet
    <model>/README.md          training command, CPU time, PSNR/SSIM against bicubic

``Upscaler(images, seeds=...)`` takes ``low`` px images and returns ``high`` px ones: the input is
upsampled (bicubic), noised to the fixed inference augmentation level, and a sampler denoises
the high-resolution image with it as conditioning. No text and no guidance: the low-resolution
image says what to draw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save

from atelier.atomic import write_atomic
from atelier.data.base import array_to_tensor, tensor_to_pil
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import StepInfo, get_sampler
from atelier.diffusion.super_resolution import augment, consistent_with, project_to_low, upsample
from atelier.models.unet import UNet, UNetConfig
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.pipelines.model_folder import build_config, load_weights, read_folder_config
from atelier.pipelines.text2image import SamplingOptions

KIND = "upscaler"


@dataclass(frozen=True)
class UpscalerConfig:
    name: str
    low: int
    high: int
    unet: UNetConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    max_aug: int = 250
    inference_aug: int = 50
    # Project every x_0 estimate onto the images whose area average is the input (DDNM): without
    # it, 20 steps left a colour cast of up to 12/255 on whole images (PSNR 28.3 dB, below
    # bicubic's 30.8, on shapes-sr-32-64).
    consistency: bool = True
    # "linspace" ends at t = 0; "trailing" (text-to-image's default) ends at t = T / steps, and
    # its last jump to x_0 left grain of about 7/255 in flat areas (SSIM 0.70 against 0.97).
    defaults: SamplingOptions = field(
        default_factory=lambda: SamplingOptions(
            steps=20, guidance=1.0, sampler="dpmpp_2m", spacing="linspace"
        )
    )

    def __post_init__(self) -> None:
        if self.high <= self.low:
            raise ValueError(f"an upscaler needs high > low, got {self.low} -> {self.high}")
        if not 0 <= self.inference_aug <= self.max_aug:
            raise ValueError("inference_aug must lie in [0, max_aug]")


class Upscaler:
    """``low`` px images -> ``high`` px images, each from its own seeded noise."""

    def __init__(self, unet: UNet, config: UpscalerConfig, *, rows: int = 8) -> None:
        self.unet, self.config, self.rows = unet.eval(), config, rows
        self._abar = config.diffusion.alphas_cumprod()

    @torch.no_grad()
    def __call__(
        self,
        images: Sequence[Image.Image],
        *,
        seeds: Sequence[int],
        options: SamplingOptions | None = None,
        callback: Callable[[StepInfo], None] | None = None,
    ) -> list[Image.Image]:
        c = self.config
        options = options or c.defaults
        if len(images) != len(seeds):
            raise ValueError(f"got {len(images)} images but {len(seeds)} seeds; pass one each")
        for im in images:
            if im.size != (c.low, c.low):
                raise ValueError(
                    f"this upscaler takes {c.low}x{c.low} images, got {im.width}x{im.height}; "
                    f"resize to {c.low} px first (it makes {c.high} px)"
                )
        device = next(self.unet.parameters()).device
        lo = torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])
        up = upsample(lo.to(device), c.high)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        level = torch.full((len(images),), c.inference_aug, dtype=torch.long, device=device)
        # Each image draws its augmentation noise and then its initial noise from its own
        # generator, so a batch gives the same images as single runs.
        aug_noise = torch.stack([torch.randn((3, c.high, c.high), generator=g) for g in gens])
        cond = augment(up, level, self._abar, noise=aug_noise.to(device))

        net = fixed_batch(lambda x, t, lv: self.unet(x, t, None, lv), self.rows)

        def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return net(torch.cat([x_t, cond], 1), t, level.to(x_t.dtype))

        denoiser = VPDenoiser(model, c.diffusion.prediction_type)
        if c.consistency:
            denoiser = consistent_with(denoiser, lo.to(device))
        plan = make_plan(self._abar, options.steps, spacing=options.spacing, karras=options.karras)
        noise = torch.stack([torch.randn((3, c.high, c.high), generator=g) for g in gens])
        x = get_sampler(options.sampler)(
            denoiser, noise.to(device) * plan.init_noise_sigma, plan, generators=gens,
            callback=callback,
        )  # fmt: skip
        return [tensor_to_pil(img) for img in x.clamp(-1, 1)]


def save_upscaler(
    unet: UNet,
    config: UpscalerConfig,
    folder: str | Path,
    *,
    card: str,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the upscaler folder; ``dtype=torch.float16`` halves it (loading casts back)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().to(dtype).contiguous() for k, v in unet.state_dict().items()}
    write_atomic(out / "unet.safetensors", save(state))
    write_atomic(out / "README.md", card)
    write_atomic(
        out / "config.json", json.dumps({"kind": KIND, "upscaler": asdict(config)}, indent=2)
    )
    return out


def load_upscaler(model: str | Path) -> Upscaler:
    path, data = read_folder_config(model, KIND)
    try:
        values = dict(data["upscaler"])
        config = UpscalerConfig(
            **{k: v for k, v in values.items() if k not in ("unet", "diffusion", "defaults")},
            unet=build_config(UNetConfig, values["unet"]),
            diffusion=build_config(DiffusionConfig, values["diffusion"]),
            defaults=build_config(SamplingOptions, values["defaults"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path / 'config.json'} is not a valid upscaler config ({err})") from None
    unet = UNet(config.unet)
    load_weights(unet, path / "unet.safetensors")
    return Upscaler(unet, config)


def upscaler_scores(
    upscaler: Upscaler, *, n: int = 64, seed: int = 10_000
) -> dict[str, tuple[float, float]]:
    """PSNR and SSIM against the true high-resolution render, for the model and for bicubic
    upsampling, on ``n`` held-out scenes (any split)."""
    from atelier.data.shapes import ShapesDataset
    from atelier.diffusion.super_resolution import degrade
    from atelier.eval.image_quality import psnr, ssim

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


def cascade_stages(sizes: Sequence[int]) -> list[Upscaler]:
    """The upscalers ``shapes-sr-A-B`` for each consecutive pair of ``sizes`` (Imagen's cascade);
    a missing stage is a FileNotFoundError naming the recipe that trains it."""
    if len(sizes) < 2 or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"a cascade needs increasing sizes like 32,64,128, got {list(sizes)}")
    stages = []
    for a, b in zip(sizes, sizes[1:]):
        try:
            stages.append(load_upscaler(f"shapes-sr-{a}-{b}"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no upscaler from {a} to {b} px (a model named shapes-sr-{a}-{b}): train it "
                f"with `atelier train shapes-sr-{a}-{b}` if that recipe exists (`atelier train "
                f"--help` lists them), or cascade through sizes that have upscalers"
            ) from None
    return stages


def run_cascade(
    images: Sequence[Image.Image], seeds: Sequence[int], stages: Sequence[Upscaler]
) -> list[Image.Image]:
    """Pass ``images`` through every stage, each image with its own seed at every stage."""
    out = list(images)
    for stage in stages:
        out = stage(out, seeds=seeds)
    return out
