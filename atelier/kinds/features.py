"""The feature-network kind: a trained shapes feature network (FID / KID features) as a folder.

<model>/config.json            {"kind": "features", "features": ShapesFeatureConfig}
<model>/features.safetensors   the network
<model>/README.md              the model card
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, open_folder, save_weights, write_folder
from atelier.models.shapes_features import ShapesFeatureConfig, ShapesFeatureNet
from atelier.safeload import build_and_load


def save_feature_net(
    net: ShapesFeatureNet, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(net, out / "features.safetensors", dtype=dtype)
    return write_folder(out, {"kind": "features", "features": asdict(net.config)}, card)


def load_feature_net(model: str | Path) -> ShapesFeatureNet:
    """A feature-network folder by path or name (``atelier train shapes-features``)."""
    folder, data = open_folder(model, "features")
    return KIND.load(folder, data)


class FeaturesKind(ModelKind):
    label = "feature network"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> ShapesFeatureNet:
        try:
            net_config = build_config(ShapesFeatureConfig, config["features"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{folder / 'config.json'} is not a valid feature-net config ({err})"
            ) from None
        file = folder / "features.safetensors"
        net = build_and_load(lambda: ShapesFeatureNet(net_config), file, what="the network")
        return net.eval().to(device)

    def save(self, model: ShapesFeatureNet, folder: Path, *, card: str, dtype=torch.float32):
        return save_feature_net(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        return Facts("feature network (FID / KID)", config.get("features", {}).get("image_size"))

    def modules(self, model: ShapesFeatureNet) -> dict[str, nn.Module]:
        return {"features": model}

    def renamed(self, model: ShapesFeatureNet, name: str) -> ShapesFeatureNet:
        return model


KIND = FeaturesKind()
