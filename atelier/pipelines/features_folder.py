"""A trained shapes feature network as a folder: config.json, features.safetensors, README.md."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import save

from atelier.atomic import write_atomic
from atelier.models.shapes_features import ShapesFeatureConfig, ShapesFeatureNet
from atelier.pipelines.model_folder import build_config, load_weights, read_folder_config

KIND = "features"


def save_feature_net(net: ShapesFeatureNet, folder: str | Path, *, card: str) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_atomic(out / "features.safetensors", save(state))
    write_atomic(out / "README.md", card)
    config = {"kind": KIND, "features": asdict(net.config)}
    write_atomic(out / "config.json", json.dumps(config, indent=2))
    return out


def load_feature_net(model: str | Path) -> ShapesFeatureNet:
    """A feature-network folder by path or name (``atelier train shapes-features``)."""
    path, data = read_folder_config(model, KIND)
    try:
        config = build_config(ShapesFeatureConfig, data["features"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path / 'config.json'} is not a valid feature-net config ({err})"
        ) from None
    net = ShapesFeatureNet(config)
    load_weights(net, path / "features.safetensors")
    return net.eval()
