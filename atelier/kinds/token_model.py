"""What the token-model kinds share (``kinds/dalle.py``, ``kinds/maskgit.py``): a self-contained
folder holding a token transformer with the two tokenizers it was trained on, loaded as a
:class:`~atelier.kinds.base.TextToImage`.

<model>/config.json                    {"kind": "dalle" | "maskgit", "format": 1, "name": ...,
                                        "resolution": S, "transformer": TokenTransformerConfig,
                                        "text_encoder": TextEncoderConfig (cross-attention
                                        models only), "defaults": the kind's options}
<model>/transformer.safetensors        the token transformer
<model>/tokenizer/                     the image tokenizer: a folder of the tokenizer kind
<model>/text_tokenizer/tokenizer.json  the captions' BPE tokenizer (prefix models only)
<model>/README.md                      the model card

A transformer reading the caption by cross-attention (``text_conditioning``) names its frozen
text encoder in the config, as a diffusion folder does: the encoder (MiniLM, from its package)
is the same for every model, so the folder holds only the choice of layer and window.

Loading checks that the tokenizers are the ones the transformer was built for: the image
tokenizer's codebook and grid, and the text tokenizer's vocabulary (or the text encoder's window
and width), against the config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from atelier.digest import state_digest
from atelier.kinds import tokenizer as tokenizer_kind
from atelier.kinds.base import Facts, ModelKind, option_specs, with_options
from atelier.kinds.folder import build_config, read_config, save_weights, write_folder
from atelier.kinds.tokenizer import TrainedTokenizer, save_tokenizer
from atelier.models.token_transformer import TokenTransformer, TokenTransformerConfig
from atelier.pipelines.token2image import TokenPipeline
from atelier.safeload import build_and_load, check_config_values
from atelier.text.encoder import TextEncoder
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import BPETokenizer

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenFamily:
    """One token-model kind: its ``kind`` name, what listings and errors call it, its network,
    options dataclass and pipeline, and how many images the pipeline makes at a time."""

    kind: str
    title: str
    label: str
    network: type[TokenTransformer]
    options: type
    pipeline: type[TokenPipeline]
    rows: int


@dataclass
class TokenModel:
    """A loaded token-model folder; a :class:`~atelier.kinds.base.TextToImage`. A prefix
    transformer reads ``text_tokenizer``'s ids; a cross-attention one ``text_encoder``'s states,
    the encoder built from ``text_encoder_config``, which the folder records."""

    family: TokenFamily
    name: str
    network: TokenTransformer
    tokenizer: TrainedTokenizer
    text_tokenizer: BPETokenizer | None
    defaults: Any
    path: Path | None = None
    text_encoder: TextEncoder | None = None
    text_encoder_config: TextEncoderConfig | None = None

    def __post_init__(self) -> None:
        cross = self.network.config.cross_attention
        parts = (self.text_tokenizer is None, self.text_encoder is not None,
                 self.text_encoder_config is not None)  # fmt: skip
        if parts != (cross,) * 3:
            raise ValueError(
                "a prefix token transformer needs text_tokenizer and no text encoder; a "
                "cross-attention one text_encoder and text_encoder_config and no text_tokenizer"
            )

    @property
    def resolution(self) -> int:
        return self.tokenizer.resolution

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over both networks and the text tokenizer (or the
        frozen text encoder's settings: its weights are the same in every model)."""
        parts = [("transformer", self.network), ("tokenizer", self.tokenizer.tokenizer)]
        if self.text_tokenizer is not None:
            text = self.text_tokenizer.to_str()
        else:
            text = json.dumps(_reading(self.text_encoder_config), sort_keys=True)
        return state_digest(*parts, salt=self.family.kind + text, length=10)

    def network_evaluations(self, options: Any = None) -> int:
        """Transformer passes per image with ``options`` (None: the defaults): the token
        model's counterpart of diffusion's NFE, as a sweep reports it."""
        return (options or self.defaults).transformer_passes(self.network.config.image_length)

    def pipeline(self, *, rows: int | None = None) -> TokenPipeline:
        """The sampling pipeline, ``rows`` images at a time (default: the family's)."""
        return self.family.pipeline(network=self.network, text_tokenizer=self.text_tokenizer,
                                    text_encoder=self.text_encoder,
                                    image_tokenizer=self.tokenizer.tokenizer,
                                    rows=rows or self.family.rows)  # fmt: skip

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: Any = None,
        callback: Callable[[Any], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]:
        if size is not None and size != self.resolution:
            raise ValueError(
                f"size {size} cannot be made by this model: a token model makes "
                f"{self.resolution} px images only (its grid of tokens is fixed)"
            )
        return self.pipeline()(prompts, seeds=seeds, negative_prompt=negative_prompt,
                               options=options or self.defaults, callback=callback)  # fmt: skip


def save_token_model(
    model: TokenModel, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    """Write a token-model folder atomically file by file (its config.json last)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.network, out / "transformer.safetensors", dtype=dtype)
    source = model.tokenizer.path
    tokenizer_card = (source / "README.md").read_text() if source is not None and (
        source / "README.md").is_file() else f"# {model.tokenizer.name}\n"  # fmt: skip
    save_tokenizer(model.tokenizer, out / "tokenizer", card=tokenizer_card, dtype=dtype)
    config = {"kind": model.family.kind, "format": FORMAT_VERSION, "name": model.name,
              "resolution": model.resolution,
              "transformer": asdict(model.network.config)}  # fmt: skip
    if model.text_tokenizer is not None:
        model.text_tokenizer.save(out / "text_tokenizer")
    else:
        config["text_encoder"] = asdict(model.text_encoder_config)
    config["defaults"] = asdict(model.defaults)
    return write_folder(out, config, card)


def _reading(config: TextEncoderConfig) -> dict[str, Any]:
    """The settings of a frozen encoder that change its states (not its prompt cache's size)."""
    return {k: v for k, v in asdict(config).items() if k != "cache_size"}


def _frozen_encoder(folder: Path, config: TokenTransformerConfig,
                    text: TextEncoderConfig) -> TextEncoder:  # fmt: skip
    """The text encoder ``text`` names, refused unless it is frozen and gives the states the
    transformer reads."""
    if text.kind != "minilm":
        raise ValueError(
            f"{folder / 'config.json'} names a {text.kind!r} text encoder, but a token model's "
            "cross-attention reads a frozen one (kind 'minilm'), whose weights it need not hold"
        )
    encoder = build_text_encoder(text)
    if (encoder.max_length, encoder.dim) != (config.text_length, config.context_dim):
        raise ValueError(
            f"the text encoder named in {folder / 'config.json'} gives {encoder.max_length} "
            f"states of {encoder.dim} but the transformer reads {config.text_length} of "
            f"{config.context_dim}"
        )
    return encoder


def _check_tokenizers(
    folder: Path, config: TokenTransformerConfig, resolution: int,
    image: TrainedTokenizer, text: BPETokenizer | None,
) -> None:  # fmt: skip
    """A ValueError naming the mismatch when a tokenizer is not the transformer's."""
    codes = image.tokenizer.codebook_size
    if codes != config.codebook_size:
        raise ValueError(
            f"the image tokenizer in {folder / 'tokenizer'} has a codebook of {codes} codes but "
            f"the transformer predicts {config.codebook_size}: a token model needs the tokenizer "
            "it was trained on"
        )
    if image.resolution != resolution or image.grid != config.grid:
        raise ValueError(
            f"the image tokenizer in {folder / 'tokenizer'} makes a {image.grid}x{image.grid} "
            f"grid at {image.resolution} px but the transformer reads {config.grid}x"
            f"{config.grid} at {resolution} px"
        )
    if text is not None and text.vocab_size != config.text_vocab:
        raise ValueError(
            f"the text tokenizer in {folder / 'text_tokenizer'} has {text.vocab_size} ids but "
            f"the transformer embeds {config.text_vocab}"
        )


class TokenKind(ModelKind):
    """The kind of one :class:`TokenFamily`."""

    def __init__(self, family: TokenFamily) -> None:
        self.family = family
        self.label = family.label

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TokenModel:
        family = self.family
        try:
            if config.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported format; this atelier reads format {FORMAT_VERSION}")
            transformer = build_config(TokenTransformerConfig, config["transformer"])
            text_config = None
            if transformer.cross_attention:
                text_config = build_config(TextEncoderConfig, config["text_encoder"])
            elif "text_encoder" in config:
                raise ValueError("text_encoder is for a transformer with text_conditioning "
                                 "'cross_attention'; this one reads BPE ids")  # fmt: skip
            defaults = build_config(family.options, config.get("defaults", {}))
            resolution = config["resolution"]
            check_config_values({"resolution": resolution}, "the model's config")
            if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
                raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{folder / 'config.json'} is not a valid {family.kind} config ({err})"
            ) from None
        sub = folder / "tokenizer"
        sub_config = read_config(sub)
        if sub_config.get("kind") != "tokenizer":
            raise ValueError(f"{sub} holds a {sub_config.get('kind')!r} model, not an image "
                             "tokenizer")  # fmt: skip
        image_tokenizer = tokenizer_kind.KIND.load(sub, sub_config, device=device)
        text_tokenizer, text_encoder = None, None
        if text_config is not None:
            text_encoder = _frozen_encoder(folder, transformer, text_config).to(device)
        else:
            try:
                text_tokenizer = BPETokenizer.load(folder / "text_tokenizer")
            except Exception as err:  # tokenizers raises its own exception types
                raise ValueError(f"cannot read the text tokenizer in "
                                 f"{folder / 'text_tokenizer'} ({err})") from None  # fmt: skip
        _check_tokenizers(folder, transformer, resolution, image_tokenizer, text_tokenizer)
        weights = folder / "transformer.safetensors"
        network = build_and_load(lambda: family.network(transformer), weights,
                                 what="the transformer")  # fmt: skip
        network = network.eval().requires_grad_(False).to(device)
        name = str(config.get("name", folder.name))
        return TokenModel(family, name, network, image_tokenizer, text_tokenizer, defaults, folder,
                          text_encoder, text_config)  # fmt: skip

    def save(self, model: TokenModel, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_token_model(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        defaults = build_config(self.family.options, config.get("defaults", {}))
        transformer = config.get("transformer")
        grid = transformer.get("grid") if isinstance(transformer, dict) else None
        codes = transformer.get("codebook_size") if isinstance(transformer, dict) else None
        resolution = config.get("resolution")
        title = f"{self.family.title}, {grid}x{grid} tokens of {codes}"
        text = config.get("text_encoder")
        if isinstance(text, dict):
            title += f", reading {text.get('kind')} states by cross-attention"
        return Facts(title, resolution if isinstance(resolution, int) else None, True,
                     option_specs(self.family.options), defaults)  # fmt: skip

    def modules(self, model: TokenModel) -> dict[str, nn.Module]:
        parts = {"transformer": model.network, "image_tokenizer": model.tokenizer.tokenizer}
        if model.text_encoder is not None:
            parts["text_encoder"] = model.text_encoder
        return parts

    def renamed(self, model: TokenModel, name: str) -> TokenModel:
        return replace(model, name=name)

    def with_defaults(self, model: TokenModel, **changes: Any) -> TokenModel:
        return replace(model, defaults=with_options(model.defaults, changes, who=model.name))
