"""A diffusion model as diffusers' folders (``atelier export --format diffusers``):

<out>/unet/config.json, diffusion_pytorch_model.safetensors      UNet2DConditionModel
<out>/vae/config.json, diffusion_pytorch_model.safetensors       AutoencoderKL (latent models)
<out>/scheduler/scheduler_config.json                            the model's default sampler
<out>/README.md                                                  the card, and how to run them

Each loads with its class's ``from_pretrained``. What diffusers' StableDiffusionPipeline would do
differently is written in the README: the prompt states come from the model's own text encoder
(with their padding mask), a UNet with coordinate channels reads them after the latents, and the
latent space is per channel (``latents_mean`` / ``latents_std`` in the VAE's config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from atelier.atomic import write_atomic
from atelier.diffusion.diffusers_schedulers import DIFFUSERS_VERSION, scheduler_config
from atelier.kinds.diffusion import Model
from atelier.models.unet_diffusers import state_dict_to_diffusers, unet_config_to_diffusers
from atelier.models.vae_diffusers import vae_config_to_diffusers, vae_state_dict_to_diffusers

WEIGHTS = "diffusion_pytorch_model.safetensors"


def _component(folder: Path, class_name: str, config: dict[str, Any],
               state: dict[str, torch.Tensor], dtype: torch.dtype) -> None:  # fmt: skip
    """One ``from_pretrained`` folder: the weights, then config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state.items()}  # fmt: skip
    write_atomic(folder / WEIGHTS, save(tensors))
    header = {"_class_name": class_name, "_diffusers_version": DIFFUSERS_VERSION}
    write_atomic(folder / "config.json", json.dumps({**header, **config}, indent=2))


def _usage(model: Model) -> str:
    """The README section saying how to run the folders in diffusers' loop."""
    c = model.config
    coords = (
        "- The UNet reads two coordinate channels after the latents: "
        "`torch.cat([latents, coordinate_grid(latents)], 1)` "
        "(`atelier.models.unet.coordinate_grid`: each pixel centre's (y, x) in [-1, 1]).\n"
        if c.unet.coord_channels
        else ""
    )
    space = (
        "- Latents for the VAE: `latents * latents_std / scaling_factor + latents_mean` per "
        "channel (the VAE config's values), as diffusers' SDXL-style pipelines do.\n"
        if c.latent_mean is not None
        else "- Latents for the VAE: `latents / scaling_factor`.\n"
        if c.vae is not None
        else ""
    )
    return (
        "\n## In diffusers\n\n"
        "`unet/`, `vae/` and `scheduler/` load with `UNet2DConditionModel`, `AutoencoderKL` and "
        f"`{scheduler_config(c.diffusion, c.defaults)['_class_name']}.from_pretrained` "
        "(written by `atelier export --format diffusers`). StableDiffusionPipeline's loop runs "
        "them with these differences (`bench/diffusers_parity.py` is a worked example):\n\n"
        f"- Prompt states come from this model's text encoder ({c.text_encoder.kind}): "
        "`encoder_hidden_states=states, encoder_attention_mask=mask`.\n"
        f"{coords}{space}"
        f"- Its defaults: {c.defaults.summary()}.\n"
    )


def save_diffusers(model: Model, folder: str | Path, *, card: str,
                   dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """Write ``model`` as diffusers' folders under ``folder`` (README.md last); a ValueError
    names what diffusers has no equivalent for, before anything is written."""
    c = model.config
    unet_config = unet_config_to_diffusers(c.unet)
    scheduler = scheduler_config(c.diffusion, c.defaults)
    out = Path(folder)
    side = c.resolution // (c.vae.downsampling_factor if c.vae is not None else 1)
    _component(out / "unet", "UNet2DConditionModel", {"sample_size": side, **unet_config},
               state_dict_to_diffusers(model.unet.state_dict()), dtype)  # fmt: skip
    if model.vae is not None:
        vae_config = {
            "sample_size": c.resolution,
            **vae_config_to_diffusers(c.vae),
            "scaling_factor": c.latent_scale,
            "latents_mean": list(c.latent_mean) if c.latent_mean is not None else None,
            "latents_std": list(c.latent_std) if c.latent_std is not None else None,
        }
        _component(out / "vae", "AutoencoderKL", vae_config,
                   vae_state_dict_to_diffusers(model.vae.state_dict()), dtype)  # fmt: skip
    (out / "scheduler").mkdir(exist_ok=True)
    write_atomic(out / "scheduler" / "scheduler_config.json", json.dumps(scheduler, indent=2))
    write_atomic(out / "README.md", card + _usage(model))
    return out
