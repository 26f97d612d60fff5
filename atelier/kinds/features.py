"""The feature-network kind: a trained feature network (FID / KID features) as a folder.

<model>/config.json            {"kind": "features", "network": "cells" | "classes",
                                "features": ShapesFeatureConfig | ClassFeatureConfig}
<model>/features.safetensors   the network
<model>/README.md              the model card

``network``: the shapes world's cell classifier (``models/shapes_features.py``; a folder without
the key is one), or a real set's picture classifier (``models/class_features.py``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, open_folder, save_weights, write_folder
from atelier.models.class_features import ClassFeatureConfig, ClassFeatureNet
from atelier.models.shapes_features import ShapesFeatureConfig, ShapesFeatureNet
from atelier.safeload import build_and_load

FeatureNet = ShapesFeatureNet | ClassFeatureNet
# The networks a features folder may hold, by its config's "network".
NETWORKS = {"cells": (ShapesFeatureConfig, ShapesFeatureNet),
            "classes": (ClassFeatureConfig, ClassFeatureNet)}  # fmt: skip


def save_feature_net(
    net: FeatureNet, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(net, out / "features.safetensors", dtype=dtype)
    network = "classes" if isinstance(net, ClassFeatureNet) else "cells"
    config = {"kind": "features", "network": network, "features": asdict(net.config)}
    return write_folder(out, config, card)


def load_feature_net(model: str | Path) -> FeatureNet:
    """A feature-network folder by path or name (``atelier train shapes-features``,
    ``emoji-features``)."""
    folder, data = open_folder(model, "features")
    return KIND.load(folder, data)


class FeaturesKind(ModelKind):
    label = "feature network"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> FeatureNet:
        network = config.get("network", "cells")
        if network not in NETWORKS:
            raise ValueError(f"{folder / 'config.json'}: unknown network {network!r}; valid: "
                             f"{', '.join(NETWORKS)}")  # fmt: skip
        config_class, net_class = NETWORKS[network]
        try:
            net_config = build_config(config_class, config["features"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{folder / 'config.json'} is not a valid feature-net config ({err})"
            ) from None
        file = folder / "features.safetensors"
        net = build_and_load(lambda: net_class(net_config), file, what="the network")
        return net.eval().to(device)

    def save(self, model: FeatureNet, folder: Path, *, card: str, dtype=torch.float32):
        return save_feature_net(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        return Facts("feature network (FID / KID)", config.get("features", {}).get("image_size"))

    def modules(self, model: FeatureNet) -> dict[str, nn.Module]:
        return {"features": model}

    def renamed(self, model: FeatureNet, name: str) -> FeatureNet:
        return model


KIND = FeaturesKind()
