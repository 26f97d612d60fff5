"""The digit-classifier kind: the judge of generated digits, trained on real MNIST, as a folder.

<model>/config.json              {"kind": "digit-classifier", "classifier": DigitClassifierConfig}
<model>/classifier.safetensors   the network
<model>/README.md                the model card, with its accuracy on the held-out real digits

``eval/digits.py`` reads generated digits with it (the share read as the digit asked for, and
a digits FID on its features).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, open_folder, save_weights, write_folder
from atelier.models.digit_classifier import DigitClassifier, DigitClassifierConfig
from atelier.safeload import build_and_load

KIND_NAME = "digit-classifier"


def save_digit_classifier(net: DigitClassifier, folder: str | Path, *, card: str,
                          dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(net, out / "classifier.safetensors", dtype=dtype)
    return write_folder(out, {"kind": KIND_NAME, "classifier": asdict(net.config)}, card)


def load_digit_classifier(model: str | Path) -> DigitClassifier:
    """A digit-classifier folder by path or name (``atelier train mnist-classifier``)."""
    folder, data = open_folder(model, KIND_NAME)
    return KIND.load(folder, data)


class DigitClassifierKind(ModelKind):
    label = "digit classifier"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> DigitClassifier:
        try:
            net_config = build_config(DigitClassifierConfig, config["classifier"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{folder / 'config.json'} is not a valid digit-classifier config ({err})"
            ) from None
        file = folder / "classifier.safetensors"
        net = build_and_load(lambda: DigitClassifier(net_config), file, what="the classifier")
        return net.eval().requires_grad_(False).to(device)

    def save(self, model: DigitClassifier, folder: Path, *, card: str, dtype=torch.float32):
        return save_digit_classifier(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        size = config.get("classifier", {}).get("image_size")
        return Facts("digit classifier (judges generated digits)", size)

    def modules(self, model: DigitClassifier) -> dict[str, nn.Module]:
        return {"classifier": model}

    def renamed(self, model: DigitClassifier, name: str) -> DigitClassifier:
        return model


KIND = DigitClassifierKind()
