"""The unCLIP kind (DALL-E 2): a prior and a decoder over one CLIP's embeddings, as a folder,
loaded as a :class:`~atelier.kinds.base.TextToImage`.

<model>/config.json            {"kind": "unclip", "format": 1, "name": ..., "resolution": S,
                                "decoder": UNetConfig, "decoder_diffusion": DiffusionConfig,
                                "defaults": UnCLIPOptions}
<model>/decoder.safetensors    the decoder UNet (pixel space, conditioned on z_i)
<model>/prior/                 a folder of the unclip-prior kind, holding the CLIP in prior/clip/
<model>/README.md              the model card

The prior, decoder and CLIP are three parts one pipeline chains (``pipelines/unclip.py``), as
Karlo's sampler chains its prior, decoder and upsampler: the folder is self-contained, and loading
checks the decoder against the prior's CLIP (its embedding width and its text tower's width).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from atelier.budget import check_pixels
from atelier.diffusion.config import DiffusionConfig
from atelier.digest import state_digest
from atelier.kinds import unclip_prior
from atelier.kinds.base import Facts, ModelKind, option_specs, with_options
from atelier.kinds.folder import build_config, read_config, save_weights, write_folder
from atelier.kinds.unclip_prior import TrainedPrior, save_prior
from atelier.models.unet import UNet, UNetConfig
from atelier.pipelines.unclip import TextDiff, UnCLIP, UnCLIPDecoder, UnCLIPPrior
from atelier.safeload import build_and_load, check_config_values
from atelier.unclip.options import UnCLIPOptions

FORMAT_VERSION = 1


@dataclass
class UnCLIPModel:
    """A loaded unCLIP folder; a :class:`~atelier.kinds.base.TextToImage` that also makes
    variations of an image (:meth:`variations`) and the path between two images
    (:meth:`interpolate_images`)."""

    name: str
    prior: TrainedPrior
    decoder: UNet
    decoder_diffusion: DiffusionConfig
    resolution: int
    defaults: UnCLIPOptions
    path: Path | None = None

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over the prior, the decoder, the embedding space and
        the CLIP (both towers: the text tower reads every caption)."""
        space = self.prior.space
        return state_digest(("prior", self.prior.prior), ("decoder", self.decoder),
                            ("clip", self.prior.clip),
                            salt=f"unclip{space.mean}{space.std}", length=10)  # fmt: skip

    def network_evaluations(self, options: UnCLIPOptions | None = None) -> int:
        """Network calls per image with ``options`` (None: the defaults): the prior's and the
        decoder's, the NFE a sweep reports."""
        return (options or self.defaults).network_evaluations()

    def pipeline(self, *, rows: int = 8) -> UnCLIP:
        """The prior and the decoder chained, each running ``rows`` network rows at a time."""
        p = self.prior
        prior = UnCLIPPrior(clip=p.clip, prior=p.prior, diffusion=p.diffusion, space=p.space,
                            rows=rows)  # fmt: skip
        decoder = UnCLIPDecoder(clip=p.clip, decoder=self.decoder,
                                diffusion=self.decoder_diffusion, resolution=self.resolution,
                                rows=rows)  # fmt: skip
        return UnCLIP(prior, decoder)

    def _check_size(self, size: int | None) -> None:
        if size is not None and size != self.resolution:
            raise ValueError(f"size {size} cannot be made by this model: an unCLIP model makes "
                             f"{self.resolution} px images only (its decoder's side); "
                             "--cascade upscales them")  # fmt: skip

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: UnCLIPOptions | None = None,
        callback: Callable[[Any], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]:
        self._check_size(size)
        return self.pipeline()(prompts, seeds=seeds, negative_prompt=negative_prompt,
                               options=options or self.defaults, callback=callback)  # fmt: skip

    def variations(
        self,
        image: Image.Image,
        *,
        seeds: Sequence[int],
        prompt: str = "",
        negative_prompt: str = "",
        options: UnCLIPOptions | None = None,
        diff: TextDiff | None = None,
        callback: Callable[[Any], None] | None = None,
    ) -> list[Image.Image]:
        """One image per seed, decoded from ``image``'s own CLIP embedding (moved by ``diff``)."""
        return self.pipeline().variations(
            image, seeds=seeds, prompt=prompt, negative_prompt=negative_prompt,
            options=options or self.defaults, diff=diff, callback=callback,
        )  # fmt: skip

    def interpolate_images(
        self,
        images: tuple[Image.Image, Image.Image],
        *,
        seed: int,
        frames: int,
        options: UnCLIPOptions | None = None,
        callback: Callable[[Any], None] | None = None,
    ) -> list[Image.Image]:
        """``frames`` images from ``images[0]`` to ``images[1]``: their CLIP embeddings slerped
        and each decoded at ``seed`` (DALL-E 2's interpolations)."""
        return self.pipeline().interpolate(images, seed=seed, frames=frames,
                                           options=options or self.defaults,
                                           callback=callback)  # fmt: skip


def save_unclip(model: UnCLIPModel, folder: str | Path, *, card: str, prior_card: str | None = None,
                dtype: torch.dtype = torch.float32) -> Path:  # fmt: skip
    """Write an unCLIP folder atomically file by file (its config.json last). ``prior_card``: the
    prior's model card (default: the one in the folder it was loaded from)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.decoder, out / "decoder.safetensors", dtype=dtype)
    if prior_card is None:
        source = model.prior.path / "README.md" if model.prior.path is not None else None
        prior_card = source.read_text() if source and source.is_file() else "# prior\n"
    save_prior(model.prior, out / "prior", card=prior_card, dtype=dtype)
    config = {"kind": "unclip", "format": FORMAT_VERSION, "name": model.name,
              "resolution": model.resolution, "decoder": asdict(model.decoder.config),
              "decoder_diffusion": asdict(model.decoder_diffusion),
              "defaults": asdict(model.defaults)}  # fmt: skip
    return write_folder(out, config, card)


def load_unclip(folder: Path, data: dict[str, Any], *, device="cpu") -> UnCLIPModel:
    """The unCLIP folder whose config.json is ``data``."""
    try:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported format; this atelier reads format {FORMAT_VERSION}")
        decoder = build_config(UNetConfig, data["decoder"])
        diffusion = build_config(DiffusionConfig, data["decoder_diffusion"])
        defaults = build_config(UnCLIPOptions, data.get("defaults", {}))
        resolution = data["resolution"]
        check_config_values({"resolution": resolution}, "the model's config")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
        if decoder.image_embed_dim is None:
            raise ValueError("the decoder has no image_embed_dim: it is not an unCLIP decoder")
        if (decoder.in_channels, decoder.out_channels) != (3, 3):
            raise ValueError("the decoder must draw RGB pixels (3 input and output channels)")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid unclip config ({err})") from None
    check_pixels(resolution, resolution, f"{folder.name}'s images")
    sub = folder / "prior"
    sub_config = read_config(sub)
    if sub_config.get("kind") != unclip_prior.KIND_NAME:
        raise ValueError(f"{sub} holds a {sub_config.get('kind')!r} model, not an unCLIP prior")
    prior = unclip_prior.load_prior(sub, sub_config, device=device)
    clip = prior.clip
    if (decoder.image_embed_dim, decoder.context_dim) != (clip.config.embed_dim, clip.text.dim):
        raise ValueError(
            f"the decoder reads {decoder.image_embed_dim}-dimensional image embeddings and text "
            f"states of {decoder.context_dim}, but the prior's CLIP gives "
            f"{clip.config.embed_dim} and {clip.text.dim}: the decoder needs the CLIP it was "
            "trained with"
        )
    unet = build_and_load(lambda: UNet(decoder), folder / "decoder.safetensors",
                          what="the decoder")  # fmt: skip
    unet = unet.eval().requires_grad_(False).to(device)
    return UnCLIPModel(str(data.get("name", folder.name)), prior, unet, diffusion, resolution,
                       defaults, folder)  # fmt: skip


class UnCLIPKind(ModelKind):
    label = "unCLIP model"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> UnCLIPModel:
        return load_unclip(folder, config, device=device)

    def save(self, model: UnCLIPModel, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_unclip(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        defaults = build_config(UnCLIPOptions, config.get("defaults", {}))
        resolution = config.get("resolution")
        return Facts("unCLIP (a prior and a pixel decoder over CLIP image embeddings)",
                     resolution if isinstance(resolution, int) else None, True,
                     option_specs(UnCLIPOptions), defaults)  # fmt: skip

    def modules(self, model: UnCLIPModel) -> dict[str, nn.Module]:
        return {**unclip_prior.KIND.modules(model.prior), "decoder": model.decoder}

    def renamed(self, model: UnCLIPModel, name: str) -> UnCLIPModel:
        return replace(model, name=name)

    def with_defaults(self, model: UnCLIPModel, **changes: Any) -> UnCLIPModel:
        return replace(model, defaults=with_options(model.defaults, changes, who=model.name))


KIND = UnCLIPKind()
