"""What the token-model kinds share (``kinds/dalle.py``, ``kinds/maskgit.py``): a self-contained
folder holding a token transformer with the two tokenizers it was trained on, loaded as a
:class:`~atelier.kinds.base.TextToImage`.

<model>/config.json                    {"kind": "dalle" | "maskgit", "format": 1, "name": ...,
                                        "resolution": S, "transformer": TokenTransformerConfig,
                                        "defaults": the kind's options}
<model>/transformer.safetensors        the token transformer
<model>/tokenizer/                     the image tokenizer: a folder of the tokenizer kind
<model>/text_tokenizer/tokenizer.json  the captions' BPE tokenizer
<model>/README.md                      the model card

Loading checks that the tokenizers are the ones the transformer was built for: the image
tokenizer's codebook and grid, and the text tokenizer's vocabulary, against the config.
"""

from __future__ import annotations

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
    """A loaded token-model folder; a :class:`~atelier.kinds.base.TextToImage`."""

    family: TokenFamily
    name: str
    network: TokenTransformer
    tokenizer: TrainedTokenizer
    text_tokenizer: BPETokenizer
    defaults: Any
    path: Path | None = None

    @property
    def resolution(self) -> int:
        return self.tokenizer.resolution

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over both networks and the text tokenizer."""
        parts = [("transformer", self.network), ("tokenizer", self.tokenizer.tokenizer)]
        salt = self.family.kind + self.text_tokenizer.to_str()
        return state_digest(*parts, salt=salt, length=10)

    def network_evaluations(self, options: Any = None) -> int:
        """Transformer passes per image with ``options`` (None: the defaults): the token
        model's counterpart of diffusion's NFE, as a sweep reports it."""
        return (options or self.defaults).transformer_passes(self.network.config.image_length)

    def pipeline(self, *, rows: int | None = None) -> TokenPipeline:
        """The sampling pipeline, ``rows`` images at a time (default: the family's)."""
        return self.family.pipeline(network=self.network, text_tokenizer=self.text_tokenizer,
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
    model.text_tokenizer.save(out / "text_tokenizer")
    config = {"kind": model.family.kind, "format": FORMAT_VERSION, "name": model.name,
              "resolution": model.resolution, "transformer": asdict(model.network.config),
              "defaults": asdict(model.defaults)}  # fmt: skip
    return write_folder(out, config, card)


def _check_tokenizers(
    folder: Path, config: TokenTransformerConfig, resolution: int,
    image: TrainedTokenizer, text: BPETokenizer,
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
    if text.vocab_size != config.text_vocab:
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
        try:
            text_tokenizer = BPETokenizer.load(folder / "text_tokenizer")
        except Exception as err:  # tokenizers raises its own exception types
            raise ValueError(f"cannot read the text tokenizer in {folder / 'text_tokenizer'} "
                             f"({err})") from None  # fmt: skip
        _check_tokenizers(folder, transformer, resolution, image_tokenizer, text_tokenizer)
        weights = folder / "transformer.safetensors"
        network = build_and_load(lambda: family.network(transformer), weights,
                                 what="the transformer")  # fmt: skip
        network = network.eval().requires_grad_(False).to(device)
        name = str(config.get("name", folder.name))
        return TokenModel(family, name, network, image_tokenizer, text_tokenizer, defaults, folder)

    def save(self, model: TokenModel, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_token_model(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        defaults = build_config(self.family.options, config.get("defaults", {}))
        transformer = config.get("transformer")
        grid = transformer.get("grid") if isinstance(transformer, dict) else None
        codes = transformer.get("codebook_size") if isinstance(transformer, dict) else None
        resolution = config.get("resolution")
        return Facts(f"{self.family.title}, {grid}x{grid} tokens of {codes}",
                     resolution if isinstance(resolution, int) else None, True,
                     option_specs(self.family.options), defaults)  # fmt: skip

    def modules(self, model: TokenModel) -> dict[str, nn.Module]:
        return {"transformer": model.network, "image_tokenizer": model.tokenizer.tokenizer}

    def renamed(self, model: TokenModel, name: str) -> TokenModel:
        return replace(model, name=name)

    def with_defaults(self, model: TokenModel, **changes: Any) -> TokenModel:
        return replace(model, defaults=with_options(model.defaults, changes, who=model.name))
