"""The noise-aware classifier kind: ADM's classifier of the shapes world's cells, for x_t.

<model>/config.json              {"kind": "classifier-noised", "name": ..., "classifier":
                                  NoisedClassifierConfig, "space": NoisedSpace}
<model>/classifier.safetensors   the network
<model>/README.md                the model card

It guides the diffusion model whose noised latents it read in training (``space``), and only
that one: `atelier generate --classifier-guidance S --classifier-model NAME` refuses another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, save_weights, write_folder
from atelier.kinds.noised_clip import space_config
from atelier.models.noised_classifier import NoisedClassifierConfig, NoisedShapesClassifier
from atelier.models.noised_space import NoisedSpace
from atelier.safeload import build_and_load

KIND_NAME = "classifier-noised"


@dataclass
class TrainedClassifier:
    """A loaded classifier folder: the network and the space it reads."""

    name: str
    classifier: NoisedShapesClassifier
    space: NoisedSpace
    path: Path | None = None


def save_classifier(model: TrainedClassifier, folder: str | Path, *, card: str,
                    dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.classifier, out / "classifier.safetensors", dtype=dtype)
    config = {"kind": KIND_NAME, "name": model.name, "space": asdict(model.space),
              "classifier": asdict(model.classifier.config)}  # fmt: skip
    return write_folder(out, config, card)


def _load(folder: Path, data: dict[str, Any], *, device="cpu") -> TrainedClassifier:
    try:
        config = build_config(NoisedClassifierConfig, data["classifier"])
        space = space_config(data["space"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid classifier config "
                         f"({err})") from None  # fmt: skip
    if (config.in_channels, config.image_size, config.image_size) != space.latent_shape:
        raise ValueError(
            f"{folder / 'config.json'}: the classifier reads {config.in_channels} x "
            f"{config.image_size}^2 latents, its space is {space.latent_shape}"
        )
    net = build_and_load(lambda: NoisedShapesClassifier(config), folder / "classifier.safetensors",
                         what="the classifier")  # fmt: skip
    net = net.eval().requires_grad_(False).to(device)
    return TrainedClassifier(str(data.get("name", folder.name)), net, space, folder)


class NoisedClassifierKind(ModelKind):
    label = "noise-aware classifier"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TrainedClassifier:
        return _load(folder, config, device=device)

    def save(self, model: TrainedClassifier, folder: Path, *, card: str, dtype=torch.float32):
        return save_classifier(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        space = config.get("space", {}) if isinstance(config, dict) else {}
        return Facts(f"noise-aware cell classifier (guides {space.get('model', '?')})")

    def modules(self, model: TrainedClassifier) -> dict[str, nn.Module]:
        return {"classifier": model.classifier}

    def renamed(self, model: TrainedClassifier, name: str) -> TrainedClassifier:
        return TrainedClassifier(name, model.classifier, model.space, model.path)


KIND = NoisedClassifierKind()
