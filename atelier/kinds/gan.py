"""The GAN kind: a text-conditional generator (DF-GAN, ``models/gan_generator.py``) as a folder.
One pass of the network per image; the discriminator it was trained against is not kept.

<model>/config.json              {"kind": "gan", "format": 1, "name": ..., "generator":
                                  GeneratorConfig, "text_encoder": TextEncoderConfig,
                                  "defaults": GANOptions}
<model>/generator.safetensors    the generator
<model>/text_encoder/            the trainable text encoder (absent for the frozen MiniLM)
<model>/README.md                the model card

Loading checks that the text encoder gives the widths the generator reads.
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
from atelier.digest import state_digest
from atelier.gan.options import GANOptions
from atelier.kinds.base import Facts, ModelKind, option_specs, with_options
from atelier.kinds.folder import build_config, save_weights, write_folder
from atelier.models.gan_generator import FusionGenerator, GeneratorConfig
from atelier.pipelines.gan2image import GANPipeline, GANStep
from atelier.safeload import build_and_load
from atelier.text.encoder import TextEncoder
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.trainable import TrainableTextEncoder

FORMAT_VERSION = 1


@dataclass
class GANModel:
    """A loaded GAN folder; a :class:`~atelier.kinds.base.TextToImage`."""

    name: str
    generator: FusionGenerator
    text_encoder: TextEncoder
    text_config: TextEncoderConfig
    defaults: GANOptions
    path: Path | None = None

    @property
    def resolution(self) -> int:
        return self.generator.config.resolution

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over the generator (and a trainable text encoder;
        the frozen MiniLM is the same everywhere, so only its name enters)."""
        parts: list[tuple[str, nn.Module]] = [("generator", self.generator)]
        if isinstance(self.text_encoder, TrainableTextEncoder):
            parts.append(("text_encoder", self.text_encoder))
        return state_digest(*parts, salt="gan-" + self.text_config.kind, length=10)

    def network_evaluations(self, options: GANOptions | None = None) -> int:
        """Generator passes per image: one, whatever the options."""
        return 1

    def pipeline(self, *, rows: int = 8) -> GANPipeline:
        return GANPipeline(generator=self.generator, text_encoder=self.text_encoder, rows=rows)

    def _check_size(self, size: int | None) -> None:
        if size is not None and size != self.resolution:
            raise ValueError(f"size {size} cannot be made by this model: a GAN makes "
                             f"{self.resolution} px images only")  # fmt: skip

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: GANOptions | None = None,
        callback: Callable[[GANStep], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]:
        self._check_size(size)
        return self.pipeline()(prompts, seeds=seeds, negative_prompt=negative_prompt,
                               options=options or self.defaults, callback=callback)  # fmt: skip

    def interpolate(
        self,
        prompts: tuple[str, str],
        *,
        seeds: tuple[int, int],
        frames: int,
        options: GANOptions | None = None,
    ) -> list[Image.Image]:
        """``frames`` images from (prompts[0], seeds[0]) to (prompts[1], seeds[1])."""
        return self.pipeline().interpolate(prompts, seeds=seeds, frames=frames,
                                           options=options or self.defaults)  # fmt: skip


def save_gan(
    model: GANModel, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    """Write a GAN folder atomically file by file (its config.json last); ``dtype`` for the
    generator's weights (float16 halves the file; loading casts back to float32)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.generator, out / "generator.safetensors", dtype=dtype)
    if isinstance(model.text_encoder, TrainableTextEncoder):
        model.text_encoder.save(out / "text_encoder")
    config = {"kind": "gan", "format": FORMAT_VERSION, "name": model.name,
              "resolution": model.resolution, "generator": asdict(model.generator.config),
              "text_encoder": asdict(model.text_config),
              "defaults": asdict(model.defaults)}  # fmt: skip
    return write_folder(out, config, card)


def _text_encoder(folder: Path, config: TextEncoderConfig) -> TextEncoder:
    if config.kind == "transformer":
        return TrainableTextEncoder.load(folder / "text_encoder", device="cpu")
    return build_text_encoder(config)


class GANKind(ModelKind):
    label = "text-to-image GAN"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> GANModel:
        try:
            if config.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported format; this atelier reads format {FORMAT_VERSION}")
            generator_config = build_config(GeneratorConfig, config["generator"])
            text_config = build_config(TextEncoderConfig, config["text_encoder"])
            defaults = build_config(GANOptions, config.get("defaults", {}))
            if config.get("resolution") != generator_config.resolution:
                raise ValueError(f"resolution {config.get('resolution')!r} is not the "
                                 f"generator's {generator_config.resolution}")  # fmt: skip
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{folder / 'config.json'} is not a valid gan config ({err})"
            ) from None
        side = generator_config.resolution
        check_pixels(side, side, f"{folder.name}'s images")
        text_encoder = _text_encoder(folder, text_config)
        widths = (text_encoder.pooled_dim, text_encoder.dim)
        wanted = (generator_config.sentence_dim, generator_config.word_dim)
        if widths[0] != wanted[0] or (generator_config.attention_resolutions and widths != wanted):
            raise ValueError(
                f"the {text_config.kind} text encoder of {folder} gives sentence vectors of "
                f"{widths[0]} and word states of {widths[1]} values, but the generator reads "
                f"{wanted[0]} and {wanted[1]}"
            )
        generator = build_and_load(lambda: FusionGenerator(generator_config),
                                   folder / "generator.safetensors",
                                   what="the generator")  # fmt: skip
        name = str(config.get("name", folder.name))
        return GANModel(name, generator.eval().requires_grad_(False).to(device),
                        text_encoder.eval().to(device), text_config, defaults, folder)  # fmt: skip

    def save(self, model: GANModel, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_gan(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        defaults = build_config(GANOptions, config.get("defaults", {}))
        generator = config.get("generator")
        attention = generator.get("attention_resolutions") if isinstance(generator, dict) else ()
        words = f", word attention at {', '.join(map(str, attention))} px" if attention else ""
        resolution = config.get("resolution")
        return Facts(f"text-conditional GAN (DF-GAN){words}",
                     resolution if isinstance(resolution, int) else None, True,
                     option_specs(GANOptions), defaults)  # fmt: skip

    def modules(self, model: GANModel) -> dict[str, nn.Module]:
        return {"text_encoder": model.text_encoder, "generator": model.generator}

    def renamed(self, model: GANModel, name: str) -> GANModel:
        return replace(model, name=name)

    def with_defaults(self, model: GANModel, **changes: Any) -> GANModel:
        return replace(model, defaults=with_options(model.defaults, changes, who=model.name))


KIND = GANKind()
