"""A trained text-to-image model as a folder, and the pipeline it loads into.

    <model>/config.json           ModelConfig: sizes of every part, schedule, defaults
    <model>/unet.safetensors      the denoising network
    <model>/vae.safetensors       the autoencoder (latent models only)
    <model>/text_encoder/         the trainable text encoder (absent for the frozen MiniLM)
    <model>/README.md             the model card: how it was trained, what it scores

A model is named by a path, or by the name of a folder in :func:`model_dirs` (models trained
here in ``$ATELIER_HOME/models`` first, then the ones shipped inside the package). Weights are
safetensors only; every file is written atomically, and loading checks each file against
``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from atelier.atomic import write_atomic
from atelier.diffusion.config import DiffusionConfig
from atelier.digest import state_digest
from atelier.models.latent_space import LatentSpace
from atelier.models.unet import UNet, UNetConfig
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.paths import home
from atelier.pipelines.text2image import SamplingOptions, Text2Image
from atelier.text.encoder import TextEncoder
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.trainable import TrainableTextEncoder

SHIPPED = Path(str(resources.files("atelier"))) / "weights"
# The text-to-image model every command, the demo and the server use unless told otherwise: the
# frozen-MiniLM variant, which reads position words (shapes-ldm, the trainable-encoder variant,
# does not; see its model card).
DEFAULT_MODEL = "shapes-ldm-minilm"


def model_dirs() -> tuple[Path, ...]:
    """Where model names are looked up: models trained here (``$ATELIER_HOME/models``) first, so a
    retrained model replaces the shipped one of its name, then the models shipped in the package."""
    return (home() / "models", SHIPPED)


FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained model's parts and sample from it as trained."""

    name: str
    kind: Literal["latent", "pixel"]
    resolution: int
    unet: UNetConfig
    text_encoder: TextEncoderConfig
    diffusion: DiffusionConfig
    vae: VAEConfig | None = None
    latent_scale: float = 1.0
    # Per-channel latent statistics (diffusers' latents_mean / latents_std), or None.
    latent_mean: tuple[float, ...] | None = None
    latent_std: tuple[float, ...] | None = None
    defaults: SamplingOptions = field(default_factory=SamplingOptions)

    def __post_init__(self) -> None:
        if self.kind not in ("latent", "pixel"):
            raise ValueError(f"unknown model kind {self.kind!r}; valid: latent, pixel")
        if (self.kind == "latent") != (self.vae is not None):
            raise ValueError(
                "a latent model needs a vae config and a pixel model must not have one"
            )
        _ = self.latent_space  # validates scale, mean and std
        factor = self.vae.downsampling_factor if self.vae is not None else 1
        if self.resolution % factor:
            raise ValueError(
                f"resolution {self.resolution} is not a multiple of the VAE factor {factor}"
            )

    @property
    def latent_space(self) -> LatentSpace:
        mean = tuple(self.latent_mean) if self.latent_mean is not None else None
        std = tuple(self.latent_std) if self.latent_std is not None else None
        return LatentSpace(self.latent_scale, mean, std)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        if self.vae is None:
            return (self.unet.in_channels, self.resolution, self.resolution)
        side = self.resolution // self.vae.downsampling_factor
        return (self.vae.latent_channels, side, side)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_VERSION, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        if data.pop("format", None) != FORMAT_VERSION:
            raise ValueError(
                f"unsupported model format; this atelier reads format {FORMAT_VERSION}"
            )
        return cls(
            name=data["name"],
            kind=data["kind"],
            resolution=data["resolution"],
            unet=build_config(UNetConfig, data["unet"]),
            text_encoder=build_config(TextEncoderConfig, data["text_encoder"]),
            diffusion=build_config(DiffusionConfig, data["diffusion"]),
            vae=build_config(VAEConfig, data["vae"]) if data.get("vae") else None,
            latent_scale=data.get("latent_scale", 1.0),
            latent_mean=_tuple(data.get("latent_mean")),
            latent_std=_tuple(data.get("latent_std")),
            defaults=build_config(SamplingOptions, data.get("defaults", {})),
        )


def _tuple(values: list[float] | None) -> tuple[float, ...] | None:
    return tuple(values) if values is not None else None


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """A config dataclass from JSON values (lists back to tuples), naming unknown keys."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class Model:
    """The loaded parts of a model folder."""

    config: ModelConfig
    unet: UNet
    text_encoder: TextEncoder
    vae: AutoencoderKL | None
    path: Path | None = None

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over the weights, as A1111 shows a model hash.

        The frozen MiniLM is the same in every model, so only its name enters the hash.
        """
        parts = [("unet", self.unet)] + ([("vae", self.vae)] if self.vae is not None else [])
        if isinstance(self.text_encoder, TrainableTextEncoder):
            parts.append(("text_encoder", self.text_encoder))
        return state_digest(*parts, salt=self.config.text_encoder.kind, length=10)

    def pipeline(self, *, rows: int = 8) -> Text2Image:
        return Text2Image(
            network=self.unet,
            text_encoder=self.text_encoder,
            diffusion=self.config.diffusion,
            latent_shape=self.config.latent_shape,
            autoencoder=self.vae,
            latent_space=self.config.latent_space,
            rows=rows,
        )


def resolve(model: str | Path) -> Path:
    """A model folder from a path or a name; a clear error listing the known names."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    if path.name == str(model):
        for root in model_dirs():
            if (root / str(model) / "config.json").is_file():
                return root / str(model)
    roots = [root for root in model_dirs() if root.is_dir()]
    known = sorted({p.parent.name for root in roots for p in root.glob("*/config.json")})
    raise FileNotFoundError(
        f"no model at {model!r}: pass a folder holding config.json, or one of the known model "
        f"names ({', '.join(known) or 'none installed yet'}); `atelier train` writes new ones"
    )


def read_folder_config(model: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """The folder of ``model`` and its config.json, which must say ``"kind": kind``."""
    path = resolve(model)
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path / 'config.json'} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else None
        raise ValueError(f"{path} holds a {found!r} model, not a {kind} model")
    return path, data


def load_weights(module: nn.Module, file: Path) -> None:
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; the model folder is incomplete")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is corrupt or not a safetensors file ({err})") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or extra or wrong:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", extra),
                ("shape mismatch", wrong),
            )
            if keys
        ]
        raise ValueError(f"{file} does not match config.json ({'; '.join(parts)})")
    module.load_state_dict(state)


def load_model(model: str | Path, *, device: str | torch.device = "cpu") -> Model:
    """Load a model folder (or shipped name); every error names the file and the problem."""
    path = resolve(model)
    try:
        config = ModelConfig.from_json((path / "config.json").read_text())
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path / 'config.json'} is not a valid model config ({err})") from None
    unet = UNet(config.unet)
    load_weights(unet, path / "unet.safetensors")
    vae = None
    if config.vae is not None:
        vae = AutoencoderKL(config.vae)
        load_weights(vae, path / "vae.safetensors")
    if config.text_encoder.kind == "transformer":
        text_encoder = TrainableTextEncoder.load(path / "text_encoder", device="cpu")
    else:
        text_encoder = build_text_encoder(config.text_encoder)
    model_ = Model(
        config, unet.eval(), text_encoder.eval(), vae.eval() if vae is not None else None, path
    )
    for module in (model_.unet, model_.text_encoder, model_.vae):
        if module is not None:
            module.to(device)
    return model_


def save_model(
    model: Model, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    """Write a model folder atomically file by file (config.json last).

    ``dtype=torch.float16`` halves the UNet and VAE files (the shipped models); loading casts
    them back to float32, so the shipped weights are exactly what gets measured.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "unet.safetensors", save(_cpu_state(model.unet, dtype)))
    if model.vae is not None:
        write_atomic(out / "vae.safetensors", save(_cpu_state(model.vae, dtype)))
    if isinstance(model.text_encoder, TrainableTextEncoder):
        model.text_encoder.save(out / "text_encoder")
    write_atomic(out / "README.md", card)
    write_atomic(out / "config.json", model.config.to_json())
    return out


def _cpu_state(module: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }
