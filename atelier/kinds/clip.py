"""The CLIP kind: a trained CLIP as a folder.

<model>/config.json          {"kind": "clip", "clip": CLIPConfig, "text_encoder": ...}
<model>/clip.safetensors     image tower, both projections and the temperature
<model>/text_encoder/        the trainable text tower (absent for the frozen MiniLM)
<model>/README.md            the model card: training command, CPU time, zero-shot accuracy
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, open_folder, save_weights, write_folder
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.safeload import build_and_load, check_config_values
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.trainable import TrainableTextEncoder


def save_clip(
    clip: CLIP, text_config: TextEncoderConfig, folder: str | Path, *, card: str,
    dtype: torch.dtype = torch.float32,
) -> Path:  # fmt: skip
    """Write ``clip`` as a model folder, file by file atomically, config.json last."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(_WithoutTextTower(clip), out / "clip.safetensors", dtype=dtype)
    if isinstance(clip.text, TrainableTextEncoder):
        clip.text.save(out / "text_encoder")
    config = {"kind": "clip", "clip": asdict(clip.config), "text_encoder": asdict(text_config)}
    return write_folder(out, config, card)


def load_clip_folder(folder: Path, data: dict[str, Any], *, device="cpu") -> CLIP:
    """The CLIP of a folder whose config.json is ``data``. It carries its text tower's config as
    ``text_config``, so that it can be saved again."""
    try:
        clip_data = dict(data["clip"])
        vision = build_config(ViTConfig, clip_data.pop("vision"))
        check_config_values(clip_data, "CLIPConfig")
        config = CLIPConfig(vision=vision, **clip_data)
        text_config = build_config(TextEncoderConfig, data["text_encoder"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid CLIP config ({err})") from None
    if text_config.kind == "transformer":
        text = TrainableTextEncoder.load(folder / "text_encoder")
        # The folder's two configs must agree on how the tower is read: the top one is what
        # cards, fine-tunes and `clip eval` report.
        if text.config.pooling != text_config.pooling:
            raise ValueError(
                f"{folder / 'config.json'} reads the text tower by {text_config.pooling!r} "
                f"pooling, but {folder / 'text_encoder' / 'config.json'} by "
                f"{text.config.pooling!r}"
            )
    else:
        text = build_text_encoder(text_config)
    clip = build_and_load(lambda: CLIP(config, text), folder / "clip.safetensors",
                          what="the CLIP image tower", stored=_WithoutTextTower)  # fmt: skip
    clip.text_config = text_config
    return clip.eval().to(device)


def load_clip(model: str | Path, *, device: str | torch.device = "cpu") -> CLIP:
    """A CLIP folder by path or name (``atelier train shapes-clip`` installs one)."""
    folder, data = open_folder(model, "clip")
    return load_clip_folder(folder, data, device=device)


class _WithoutTextTower(nn.Module):
    """A view sharing a CLIP's parameters except its text tower's (what clip.safetensors holds),
    so loading into it loads into the CLIP."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.visual = clip.visual
        self.image_projection = clip.image_projection
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale


class _Projections(nn.Module):
    """The joint-space projections and temperature as one module, for ``atelier inspect``."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.image_projection = clip.image_projection
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale


class CLIPKind(ModelKind):
    label = "CLIP model"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> CLIP:
        return load_clip_folder(folder, config, device=device)

    def save(self, model: CLIP, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_clip(model, model.text_config, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        vision = config.get("clip", {}).get("vision", {}) if isinstance(config, dict) else {}
        return Facts("CLIP (image-text embeddings)", vision.get("image_size"))

    def modules(self, model: CLIP) -> dict[str, nn.Module]:
        return {"image_tower": model.visual, "text_tower": model.text,
                "projections": _Projections(model)}  # fmt: skip

    def renamed(self, model: CLIP, name: str) -> CLIP:
        return model  # a CLIP folder's name is its folder's


KIND = CLIPKind()
