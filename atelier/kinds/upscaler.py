"""The upscaler kind: a super-resolution diffusion model as a folder, and a cascade by name.

<model>/config.json        {"kind": "upscaler", "upscaler": UpscalerConfig}
<model>/unet.safetensors   the 6-channel, noise-level-conditioned UNet
<model>/README.md          training command, CPU time, PSNR/SSIM against bicubic
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.budget import check_pixels
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import (
    build_config,
    open_folder,
    save_weights,
    write_folder,
)
from atelier.models.unet import UNet, UNetConfig
from atelier.pipelines.upscale import Upscaler
from atelier.safeload import build_and_load, check_config_values


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
    save_weights(unet, out / "unet.safetensors", dtype=dtype)
    return write_folder(out, {"kind": "upscaler", "upscaler": asdict(config)}, card)


def _load(folder: Path, data: dict[str, Any], *, device="cpu") -> Upscaler:
    try:
        values = dict(data["upscaler"])
        check_config_values({k: v for k, v in values.items() if not isinstance(v, dict)},
                            "UpscalerConfig")  # fmt: skip
        config = UpscalerConfig(
            **{k: v for k, v in values.items() if k not in ("unet", "diffusion", "defaults")},
            unet=build_config(UNetConfig, values["unet"]),
            diffusion=build_config(DiffusionConfig, values["diffusion"]),
            defaults=build_config(SamplingOptions, values["defaults"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{folder / 'config.json'} is not a valid upscaler config ({err})"
        ) from None
    check_pixels(config.high, config.high, f"{folder.name}'s images")
    unet = build_and_load(lambda: UNet(config.unet), folder / "unet.safetensors", what="the UNet")
    return Upscaler(unet.to(device), config)


def load_upscaler(model: str | Path) -> Upscaler:
    """An upscaler folder by name or path."""
    folder, data = open_folder(model, "upscaler")
    return _load(folder, data)


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


class UpscalerKind(ModelKind):
    label = "upscaler"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> Upscaler:
        return _load(folder, config, device=device)

    def save(self, model: Upscaler, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_upscaler(model.unet, model.config, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        high = config.get("upscaler", {}).get("high") if isinstance(config, dict) else None
        low = config.get("upscaler", {}).get("low")
        return Facts(f"upscaler ({low} -> {high} px)", high)

    def modules(self, model: Upscaler) -> dict[str, nn.Module]:
        return {"unet": model.unet}

    def renamed(self, model: Upscaler, name: str) -> Upscaler:
        return Upscaler(model.unet, replace(model.config, name=name))

    def with_defaults(self, model: Upscaler, **changes: Any) -> Upscaler:
        raise ValueError("an upscaler's sampling defaults are set in its config, not by export")


KIND = UpscalerKind()
