"""The autoencoder kind: a trained KL autoencoder (the latent space of latent diffusion).

<model>/config.json        {"kind": "vae", "name": ..., "vae": VAEConfig, "latent_scale": s}
<model>/vae.safetensors    encoder and decoder
<model>/README.md          training command, CPU time, PSNR, the judge's ceiling through it
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import (
    build_config,
    open_folder,
    save_weights,
    write_folder,
)
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.safeload import build_and_load, check_config_values


@dataclass
class TrainedAutoencoder:
    """A loaded autoencoder folder: the network and the scale of its latents."""

    name: str
    vae: AutoencoderKL
    latent_scale: float
    path: Path | None = None


def save_autoencoder(
    model: TrainedAutoencoder, folder: str | Path, *, card: str,
    dtype: torch.dtype = torch.float32,
) -> Path:  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.vae, out / "vae.safetensors", dtype=dtype)
    config = {"kind": "vae", "name": model.name, "vae": asdict(model.vae.config),
              "latent_scale": model.latent_scale}  # fmt: skip
    return write_folder(out, config, card)


def _load(folder: Path, data: dict[str, Any], *, device="cpu") -> TrainedAutoencoder:
    try:
        config = build_config(VAEConfig, data["vae"])
        scale = float(data["latent_scale"])
        check_config_values({"latent_scale": scale}, "the autoencoder's config")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{folder / 'config.json'} is not a valid autoencoder config ({err})"
        ) from None
    vae = build_and_load(lambda: AutoencoderKL(config), folder / "vae.safetensors",
                         what="the autoencoder")  # fmt: skip
    vae = vae.eval().requires_grad_(False).to(device)
    return TrainedAutoencoder(str(data.get("name", folder.name)), vae, scale, folder)


def load_vae(model: str | Path) -> tuple[AutoencoderKL, float]:
    """A trained autoencoder folder (by name or path): its frozen network and latent scale."""
    folder, data = open_folder(model, "vae")
    loaded = _load(folder, data)
    return loaded.vae, loaded.latent_scale


class AutoencoderKind(ModelKind):
    label = "autoencoder"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TrainedAutoencoder:
        return _load(folder, config, device=device)

    def save(self, model: TrainedAutoencoder, folder: Path, *, card: str, dtype=torch.float32):
        return save_autoencoder(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        return Facts("KL autoencoder")

    def modules(self, model: TrainedAutoencoder) -> dict[str, nn.Module]:
        return {"vae": model.vae}

    def renamed(self, model: TrainedAutoencoder, name: str) -> TrainedAutoencoder:
        return replace(model, name=name)


KIND = AutoencoderKind()
