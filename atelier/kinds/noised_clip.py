"""The noised-CLIP kind: GLIDE's CLIP for x_t, with the CLIP whose text tower it answers to.

<model>/config.json               {"kind": "clip-noised", "name": ..., "noised_clip":
                                   NoisedViTConfig, "space": NoisedSpace}
<model>/noised_clip.safetensors   the noised image tower, its projection and temperature
<model>/clip/                     a folder of the clip kind: the frozen CLIP (its text tower)
<model>/README.md                 the model card

It guides the diffusion model whose noised latents it read in training (``space``), and only
that one: `atelier generate --clip-guidance S --clip-model NAME` refuses another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.diffusion.config import DiffusionConfig
from atelier.kinds import clip as clip_kind
from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, read_config, save_weights, write_folder
from atelier.models.noised_clip import NoisedCLIP, NoisedViTConfig
from atelier.models.noised_space import NoisedSpace
from atelier.safeload import build_and_load

KIND_NAME = "clip-noised"


@dataclass
class TrainedNoisedCLIP:
    """A loaded noised-CLIP folder: the network (with its frozen CLIP) and the space it reads."""

    name: str
    model: NoisedCLIP
    space: NoisedSpace
    path: Path | None = None
    clip_card: str | None = None  # the frozen CLIP's card, for a model not yet saved


class _Stored(nn.Module):
    """What noised_clip.safetensors holds: everything but the frozen CLIP."""

    def __init__(self, model: NoisedCLIP) -> None:
        super().__init__()
        self.visual = model.visual
        self.image_projection = model.image_projection
        self.logit_scale = model.logit_scale


def space_config(data: dict[str, Any]) -> NoisedSpace:
    """The :class:`NoisedSpace` a noise-aware folder's config states."""
    values = dict(data)
    diffusion = build_config(DiffusionConfig, values.pop("diffusion"))
    return build_config(NoisedSpace, {**values, "diffusion": diffusion})


def save_noised_clip(model: TrainedNoisedCLIP, folder: str | Path, *, card: str,
                     dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(_Stored(model.model), out / "noised_clip.safetensors", dtype=dtype)
    clip = model.model.clip
    card_file = model.path / "clip" / "README.md" if model.path is not None else None
    clip_card = model.clip_card or "# CLIP\n"
    if card_file is not None and card_file.is_file():
        clip_card = card_file.read_text()
    clip_kind.save_clip(clip, clip.text_config, out / "clip", card=clip_card, dtype=dtype)
    config = {"kind": KIND_NAME, "name": model.name, "noised_clip": asdict(model.model.config),
              "space": asdict(model.space)}  # fmt: skip
    return write_folder(out, config, card)


def _load(folder: Path, data: dict[str, Any], *, device="cpu") -> TrainedNoisedCLIP:
    try:
        config = build_config(NoisedViTConfig, data["noised_clip"])
        space = space_config(data["space"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid noised-CLIP config "
                         f"({err})") from None  # fmt: skip
    if (config.in_channels, config.image_size, config.image_size) != space.latent_shape:
        raise ValueError(
            f"{folder / 'config.json'}: the tower reads {config.in_channels} x "
            f"{config.image_size}^2 latents, its space is {space.latent_shape}"
        )
    sub = folder / "clip"
    clip = clip_kind.load_clip_folder(sub, read_config(sub), device=device)
    model = build_and_load(lambda: NoisedCLIP(config, clip), folder / "noised_clip.safetensors",
                           what="the noised image tower", stored=_Stored)  # fmt: skip
    model = model.eval().requires_grad_(False).to(device)
    return TrainedNoisedCLIP(str(data.get("name", folder.name)), model, space, folder)


class NoisedCLIPKind(ModelKind):
    label = "noised CLIP model"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TrainedNoisedCLIP:
        return _load(folder, config, device=device)

    def save(self, model: TrainedNoisedCLIP, folder: Path, *, card: str, dtype=torch.float32):
        return save_noised_clip(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        space = config.get("space", {}) if isinstance(config, dict) else {}
        return Facts(f"noised CLIP (guides {space.get('model', '?')})")

    def modules(self, model: TrainedNoisedCLIP) -> dict[str, nn.Module]:
        return {"noised_image_tower": model.model.visual, "clip": model.model.clip}

    def renamed(self, model: TrainedNoisedCLIP, name: str) -> TrainedNoisedCLIP:
        return TrainedNoisedCLIP(name, model.model, model.space, model.path)


KIND = NoisedCLIPKind()
