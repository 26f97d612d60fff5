"""The unCLIP prior kind: a diffusion prior over a CLIP's image embeddings, with that CLIP.

<model>/config.json                  {"kind": "unclip-prior", "format": 1, "name": ...,
                                      "prior": PriorConfig, "diffusion": DiffusionConfig}
<model>/prior.safetensors            the prior network
<model>/embedding_stats.safetensors  the per-dimension mean and std of the training images'
                                     embeddings, which define the space the prior diffuses in
<model>/clip/                        a folder of the clip kind: the CLIP whose space it samples
<model>/README.md                    the model card

It draws no images by itself: an unCLIP folder (``kinds/unclip.py``) holds one beside its
decoder. Loading checks the prior against its CLIP's widths and window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.diffusion.config import DiffusionConfig
from atelier.kinds import clip as clip_kind
from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, read_config, save_weights, write_folder
from atelier.models.clip import CLIP
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorConfig, PriorTransformer
from atelier.safeload import build_and_load

FORMAT_VERSION = 1
KIND_NAME = "unclip-prior"


@dataclass
class TrainedPrior:
    """A loaded prior folder: the network, its diffusion process, the normalised embedding space
    it works in, and its CLIP."""

    name: str
    prior: PriorTransformer
    diffusion: DiffusionConfig
    space: LatentSpace
    clip: CLIP
    path: Path | None = None

    def clip_card(self) -> str:
        """The model card of the CLIP, as its folder holds it (a bare title for a new prior)."""
        source = self.path / "clip" / "README.md" if self.path is not None else None
        return source.read_text() if source is not None and source.is_file() else "# CLIP\n"


class _Statistics(nn.Module):
    """The embedding space's mean and std as tensors (E values each are too many for a config)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(dim, dtype=torch.float64))


def save_prior(model: TrainedPrior, folder: str | Path, *, card: str, clip_card: str | None = None,
               dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """Write a prior folder atomically file by file (its config.json last); the statistics stay
    float64 whatever ``dtype`` the network is stored in. ``clip_card``: the CLIP's model card
    (default: the one in the folder the prior was loaded from)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.prior, out / "prior.safetensors", dtype=dtype)
    stats = _Statistics(model.prior.config.embed_dim)
    stats.mean.copy_(torch.tensor(model.space.mean, dtype=torch.float64))
    stats.std.copy_(torch.tensor(model.space.std, dtype=torch.float64))
    save_weights(stats, out / "embedding_stats.safetensors", dtype=torch.float64)
    clip_kind.save_clip(model.clip, model.clip.text_config, out / "clip",
                        card=clip_card or model.clip_card(), dtype=dtype)  # fmt: skip
    config = {"kind": KIND_NAME, "format": FORMAT_VERSION, "name": model.name,
              "prior": asdict(model.prior.config),
              "diffusion": asdict(model.diffusion)}  # fmt: skip
    return write_folder(out, config, card)


def load_prior(folder: Path, data: dict[str, Any], *, device="cpu") -> TrainedPrior:
    """The prior folder whose config.json is ``data``, checked against its CLIP."""
    try:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported format; this atelier reads format {FORMAT_VERSION}")
        config = build_config(PriorConfig, data["prior"])
        diffusion = build_config(DiffusionConfig, data["diffusion"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid {KIND_NAME} config "
                         f"({err})") from None  # fmt: skip
    sub = folder / "clip"
    clip = clip_kind.load_clip_folder(sub, _clip_config(sub), device=device)
    found = (clip.config.embed_dim, clip.text.dim, clip.text.max_length)
    if found != (config.embed_dim, config.text_dim, config.text_length):
        raise ValueError(
            f"the CLIP in {sub} embeds in {found[0]} dimensions from {found[2]} text states of "
            f"{found[1]}, but the prior was built for {config.embed_dim} from "
            f"{config.text_length} of {config.text_dim}: a prior needs the CLIP it was trained on"
        )
    prior = build_and_load(lambda: PriorTransformer(config), folder / "prior.safetensors",
                           what="the prior")  # fmt: skip
    stats = build_and_load(lambda: _Statistics(config.embed_dim),
                           folder / "embedding_stats.safetensors",
                           what="the embedding statistics")  # fmt: skip
    try:
        space = LatentSpace(mean=tuple(stats.mean.tolist()), std=tuple(stats.std.tolist()))
    except ValueError as err:
        raise ValueError(f"{folder / 'embedding_stats.safetensors'}: {err}") from None
    prior = prior.eval().requires_grad_(False).to(device)
    return TrainedPrior(str(data.get("name", folder.name)), prior, diffusion, space, clip, folder)


def _clip_config(sub: Path) -> dict[str, Any]:
    config = read_config(sub)
    if config.get("kind") != "clip":
        raise ValueError(f"{sub} holds a {config.get('kind')!r} model, not a CLIP")
    return config


class PriorKind(ModelKind):
    label = "unCLIP prior"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TrainedPrior:
        return load_prior(folder, config, device=device)

    def save(self, model: TrainedPrior, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_prior(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        prior = config.get("prior")
        dim = prior.get("embed_dim") if isinstance(prior, dict) else None
        return Facts(f"unCLIP prior over {dim}-dimensional CLIP image embeddings")

    def modules(self, model: TrainedPrior) -> dict[str, nn.Module]:
        return {"prior": model.prior, **{f"clip.{k}": v for k, v in
                                         clip_kind.KIND.modules(model.clip).items()}}  # fmt: skip

    def renamed(self, model: TrainedPrior, name: str) -> TrainedPrior:
        return replace(model, name=name)


KIND = PriorKind()
