"""The image tokenizer kind: images to a grid of codes and back (what token generators draw with).

<model>/config.json              {"kind": "tokenizer", "name": ..., "resolution": S,
                                  "tokenizer": TokenizerConfig}
<model>/tokenizer.safetensors    encoder, quantizer (codebook and its EMA statistics), decoder
<model>/README.md                training command, CPU time, PSNR, judge pass rate, code usage

``resolution`` is the image side it was trained at; its token grid is S / f per side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.kinds.base import Facts, ModelKind
from atelier.kinds.folder import build_config, save_weights, write_folder
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.safeload import build_and_load, check_config_values


@dataclass
class TrainedTokenizer:
    """A loaded tokenizer folder: the network and the image side it was trained at."""

    name: str
    tokenizer: ImageTokenizer
    resolution: int
    path: Path | None = None

    @property
    def grid(self) -> int:
        """Tokens per side at ``resolution``."""
        return self.resolution // self.tokenizer.config.downsampling_factor


def save_tokenizer(
    model: TrainedTokenizer, folder: str | Path, *, card: str,
    dtype: torch.dtype = torch.float32,
) -> Path:  # fmt: skip
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.tokenizer, out / "tokenizer.safetensors", dtype=dtype)
    config = {"kind": "tokenizer", "name": model.name, "resolution": model.resolution,
              "tokenizer": asdict(model.tokenizer.config)}  # fmt: skip
    return write_folder(out, config, card)


def _load(folder: Path, data: dict[str, Any], *, device="cpu") -> TrainedTokenizer:
    try:
        config = build_config(TokenizerConfig, data["tokenizer"])
        resolution = data["resolution"]
        check_config_values({"resolution": resolution}, "the tokenizer's config")
        f = config.downsampling_factor
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < f:
            raise ValueError(f"resolution must be an integer >= f = {f}, got {resolution!r}")
        if resolution % f:
            raise ValueError(f"resolution {resolution} is not a multiple of f = {f}")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{folder / 'config.json'} is not a valid tokenizer config ({err})"
        ) from None
    tokenizer = build_and_load(lambda: ImageTokenizer(config), folder / "tokenizer.safetensors",
                               what="the tokenizer")  # fmt: skip
    tokenizer = tokenizer.eval().requires_grad_(False).to(device)
    return TrainedTokenizer(str(data.get("name", folder.name)), tokenizer, resolution, folder)


class TokenizerKind(ModelKind):
    label = "image tokenizer"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> TrainedTokenizer:
        return _load(folder, config, device=device)

    def save(self, model: TrainedTokenizer, folder: Path, *, card: str, dtype=torch.float32):
        return save_tokenizer(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        tokenizer = config.get("tokenizer")
        tokenizer = tokenizer if isinstance(tokenizer, dict) else {}
        quantizer = {"vq": "VQ", "gumbel": "Gumbel"}.get(tokenizer.get("quantizer"), "?")
        resolution = config.get("resolution")
        return Facts(f"image tokenizer ({quantizer}, {tokenizer.get('codebook_size')} codes)",
                     resolution if isinstance(resolution, int) else None)  # fmt: skip

    def modules(self, model: TrainedTokenizer) -> dict[str, nn.Module]:
        t = model.tokenizer
        return {"encoder": t.encoder, "quantizer": t.quantizer, "decoder": t.decoder}

    def renamed(self, model: TrainedTokenizer, name: str) -> TrainedTokenizer:
        return replace(model, name=name)


KIND = TokenizerKind()
