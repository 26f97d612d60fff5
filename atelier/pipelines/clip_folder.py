"""A trained CLIP as a folder, like a text-to-image model folder.

<model>/config.json          {"kind": "clip", "clip": CLIPConfig, "text_encoder": ...}
<model>/clip.safetensors     image tower, both projections and the temperature
<model>/text_encoder/        the trainable text tower (absent for the frozen MiniLM)
<model>/README.md            the model card: training command, CPU time, zero-shot accuracy
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save

from atelier.atomic import write_atomic
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.pipelines.model_folder import build_config, load_weights, read_folder_config
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.trainable import TrainableTextEncoder

KIND = "clip"


def save_clip(clip: CLIP, text_config: TextEncoderConfig, folder: str | Path, *, card: str) -> Path:
    """Write ``clip`` as a model folder, file by file atomically, config.json last."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in clip.state_dict().items()
        if not k.startswith("text.")
    }
    write_atomic(out / "clip.safetensors", save(state))
    if isinstance(clip.text, TrainableTextEncoder):
        clip.text.save(out / "text_encoder")
    write_atomic(out / "README.md", card)
    config = {"kind": KIND, "clip": asdict(clip.config), "text_encoder": asdict(text_config)}
    write_atomic(out / "config.json", json.dumps(config, indent=2))
    return out


def load_clip(model: str | Path, *, device: str | torch.device = "cpu") -> CLIP:
    """A CLIP folder by path or name (``atelier train shapes-clip`` installs one)."""
    path, data = read_folder_config(model, KIND)
    try:
        clip_data = dict(data["clip"])
        vision = build_config(ViTConfig, clip_data.pop("vision"))
        config = CLIPConfig(vision=vision, **clip_data)
        text_config = build_config(TextEncoderConfig, data["text_encoder"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path / 'config.json'} is not a valid CLIP config ({err})") from None
    if text_config.kind == "transformer":
        text = TrainableTextEncoder.load(path / "text_encoder")
    else:
        text = build_text_encoder(text_config)
    clip = CLIP(config, text)
    load_weights(_WithoutTextTower(clip), path / "clip.safetensors")
    return clip.eval().to(device)


class _WithoutTextTower(torch.nn.Module):
    """A view sharing a CLIP's parameters except its text tower's (what clip.safetensors holds),
    so loading into it loads into the CLIP."""

    def __init__(self, clip: CLIP) -> None:
        super().__init__()
        self.visual = clip.visual
        self.image_projection = clip.image_projection
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale
