"""The diffusion kind: a trained text-to-image diffusion model (latent or pixel) as a folder.

<model>/config.json           ModelConfig: sizes of every part, schedule, defaults
<model>/unet.safetensors      the denoising network
<model>/vae.safetensors       the autoencoder (latent models only)
<model>/text_encoder/         the trainable text encoder (absent for the frozen MiniLM)
<model>/README.md             the model card: how it was trained, what it scores
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from atelier.budget import check_pixels
from atelier.data.base import tensor_to_pil
from atelier.diffusion import samplers
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.digest import state_digest
from atelier.kinds import adapters
from atelier.kinds.base import Facts, ModelKind, option_specs, with_options
from atelier.kinds.folder import build_config, save_weights, write_folder
from atelier.models.latent_space import LatentSpace
from atelier.models.lora import LoRANetwork
from atelier.models.lora_keys import from_tensors
from atelier.models.unet import UNet, UNetConfig
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.pipelines.interpolate import frame_weights, noise_path, text_path
from atelier.pipelines.lora_tags import LoRASpec, split_lora_tags
from atelier.pipelines.runtime import compiled
from atelier.pipelines.text2image import Text2Image
from atelier.safeload import build_and_load, check_config_values
from atelier.text.encoder import TextEncoder
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.trainable import TrainableTextEncoder

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
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        check_config_values({k: v for k, v in data.items() if not isinstance(v, dict)},
                            "ModelConfig")  # fmt: skip
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

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


def _tuple(values: list[float] | None) -> tuple[float, ...] | None:
    return tuple(values) if values is not None else None


@dataclass
class Model:
    """The loaded parts of a diffusion model folder; a :class:`~atelier.kinds.base.TextToImage`.

    Personalisation (``kinds/adapters.py``): a prompt's ``<lora:NAME:WEIGHT>`` tags attach those
    LoRAs for its image (:meth:`use_loras`), and a word of an installed textual-inversion
    embedding loads it into the text encoder (:meth:`use_embeddings`), as AUTOMATIC1111 does.
    """

    config: ModelConfig
    unet: UNet
    text_encoder: TextEncoder
    vae: AutoencoderKL | None
    path: Path | None = None
    loras: dict[str, LoRANetwork] = field(default_factory=dict, repr=False)  # loaded, by name
    lora_specs: tuple[LoRASpec, ...] = ()  # the LoRAs attached now, with their weights
    # Whether a prompt's word loads the installed embedding that teaches it (measurements of
    # other methods turn it off, so an installed word cannot change what they draw).
    auto_embeddings: bool = True
    # The UNet through torch.compile (:meth:`compile`), or None: every network runs eager.
    compiled_unet: nn.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def defaults(self) -> SamplingOptions:
        return self.config.defaults

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of a SHA-256 over the weights, as A1111 shows a model hash.

        The frozen MiniLM is the same in every model, so only its name enters the hash.
        """
        parts = [("unet", self.unet)] + ([("vae", self.vae)] if self.vae is not None else [])
        if isinstance(self.text_encoder, TrainableTextEncoder):
            parts.append(("text_encoder", self.text_encoder))
        return state_digest(*parts, salt=self.config.text_encoder.kind, length=10)

    def adapter_parts(self) -> dict[str, nn.Module]:
        """The networks a LoRA may adapt: the UNet, and a trainable text encoder."""
        parts: dict[str, nn.Module] = {"unet": self.unet}
        if isinstance(self.text_encoder, TrainableTextEncoder):
            parts["text_encoder"] = self.text_encoder
        return parts

    def use_loras(self, specs: Sequence[LoRASpec]) -> None:
        """Attach exactly these LoRAs (name or file, weight), detaching any others; weight 0
        leaves the model as it is, bit for bit. A file that does not fit is refused naming why."""
        for name, _ in specs:
            self.lora(name)
        weights: dict[str, float] = {}
        for name, weight in specs:
            weights[name] = weights.get(name, 0.0) + weight
        for name, network in self.loras.items():
            if name in weights:
                network.attach(weights[name])
            elif network.attached:
                network.detach()
        self.lora_specs = tuple(specs)

    def lora(self, name: str) -> LoRANetwork:
        """The LoRA a name or file means, loaded once and checked against this model (not
        attached); a file that does not fit is refused naming why."""
        if name not in self.loras:
            file = adapters.resolve_lora(name)
            tensors, metadata = adapters.read_tensors(file, "LoRA")
            try:
                network, _ = from_tensors(self.adapter_parts(), tensors, metadata)
            except ValueError as err:
                raise ValueError(f"LoRA {name} ({file}) cannot be used with "
                                 f"{self.name}: {err}") from None  # fmt: skip
            self.loras[name] = network.to(self.device).eval()
        return self.loras[name]

    def use_embeddings(self, names: Sequence[str | Path]) -> list[str]:
        """Load textual-inversion embeddings (names or files) into the text encoder; the
        words they teach."""
        words = []
        for name in names:
            file = adapters.resolve_embedding(name)
            vectors = adapters.read_embeddings(file)
            try:
                self.text_encoder.add_tokens(vectors)
            except ValueError as err:
                raise ValueError(f"embedding {name} ({file}): {err}") from None
            words += list(vectors)
        return words

    def embeddings_for(self, prompts: Sequence[str]) -> None:
        """Load every installed embedding whose word a prompt uses and the encoder lacks (one
        learned for a text encoder of another width is passed over: it is another model's)."""
        installed = adapters.installed_embeddings() if self.auto_embeddings else []
        if not installed:
            return
        used = {w for p in prompts for w in p.lower().replace(",", " ").split()}
        learned = set(self.text_encoder.learned.tokens) if self.text_encoder.learned else set()
        for name in installed:
            file = adapters.resolve_embedding(name)
            shapes = adapters.embedding_shapes(file)
            fits = all(shape[-1] == self.text_encoder.dim for shape in shapes.values())
            if fits and set(shapes) & (used - learned):
                self.use_embeddings([file])

    def take_loras(self, prompt: str) -> str:
        """Attach the LoRAs ``prompt`` asks for (loading the embeddings it uses) and return it
        without its tags: for commands that run the pipeline themselves (editing)."""
        text, specs = split_lora_tags(prompt)
        self.embeddings_for([text])
        self.use_loras(specs)
        return text

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def runtime(self) -> str:
        """``"compiled"`` once :meth:`compile` has run, else ``"eager"``: what a PNG records."""
        return "eager" if self.compiled_unet is None else "compiled"

    def compile(self) -> Model:
        """Sample with the UNet through ``torch.compile`` from now on (``pipelines/runtime.py``)
        and return this model. Each call shape compiles on first use (:meth:`warm` does it now),
        kept in inductor's on-disk cache for the next process; images differ from eager's by a
        level or two. While a LoRA is attached the UNet runs eager: the compiled graph would not
        see its hooks. A RuntimeError says what is missing when kernels cannot be built here."""
        if self.compiled_unet is None:
            self.compiled_unet = compiled(self.unet, self.device)
        return self

    def warm(self, *, say: Callable[[str], None] = lambda _: None) -> None:
        """Draw throwaway images at every call shape a request at the model's size uses (the
        UNet at 2, 4 and 8 rows: 1, 2 and 4 guided images, up to 8 of a model that embeds its
        guidance), so a compiled model compiles them now rather than in a request; ``say``
        hears of each batch before it starts."""
        options = replace(self.defaults, steps=2)
        for images in (1, 2, 4, 8):
            say(f"{self.name}: {images} image{'s' if images > 1 else ''} a call")
            self(["a red circle"] * images, seeds=list(range(images)), options=options)

    def network_evaluations(self, options: SamplingOptions | None = None) -> int:
        """Denoiser calls per image with ``options`` (None: the defaults), the NFE a sweep
        reports; classifier-free guidance batches its two passes as one."""
        options = options or self.defaults
        ztsnr = self.config.diffusion.zero_terminal_snr
        return samplers.network_evaluations(options.sampler, options.steps, zero_terminal_snr=ztsnr)

    def pipeline(self, *, rows: int = 2, size: int | None = None) -> Text2Image:
        """The sampling pipeline (the network at ``rows`` rows a call, ``fixed_batch.py``);
        ``size`` (pixels) makes images of another side than the model's, refused with a
        ValueError naming the sides it can make."""
        attached = any(network.attached for network in self.loras.values())
        network = self.unet if self.compiled_unet is None or attached else self.compiled_unet
        pipe = Text2Image(
            network=network,
            text_encoder=self.text_encoder,
            diffusion=self.config.diffusion,
            latent_shape=self.config.latent_shape,
            autoencoder=self.vae,
            latent_space=self.config.latent_space,
            rows=rows,
        )
        if size is not None:
            check_pixels(size, size, f"size {size}")
        if size is not None and size != self.resolution:
            factor = self.vae.config.downsampling_factor if self.vae is not None else 1
            multiple = factor * 2 ** (len(self.config.unet.block_channels) - 1)
            if size < multiple or size % multiple:
                raise ValueError(
                    f"size {size} cannot be made by this model: use a multiple of {multiple} "
                    f"(it was trained at {self.resolution})"
                )
            pipe.latent_shape = (pipe.latent_shape[0], size // factor, size // factor)
        return pipe

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: SamplingOptions | None = None,
        callback: Callable[[Any], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        negative_prompt, _ = split_lora_tags(negative_prompt)

        def draw(texts: list[str], group_seeds: list[int]) -> list[Image.Image]:
            return self.pipeline(size=size)(
                texts, seeds=group_seeds, negative_prompt=negative_prompt,
                options=options or self.defaults, callback=callback,
            )  # fmt: skip

        return self.with_loras(prompts, seeds, draw)

    def with_loras(self, prompts: Sequence[str], seeds: Sequence[int],
                   draw: Callable[[list[str], list[int]], list[Any]]) -> list[Any]:  # fmt: skip
        """``draw(texts, seeds)`` for each group of prompts that ask for the same
        ``<lora:...>`` tags, with those LoRAs attached and the tags taken out (and the embeddings
        the texts use loaded); the results in the prompts' order. Every image has its own
        generator, so drawing in groups gives the pixels drawing one by one would."""
        parsed = [split_lora_tags(p) for p in prompts]
        self.embeddings_for([text for text, _ in parsed])
        groups: dict[tuple[LoRASpec, ...], list[int]] = {}
        for i, (_, specs) in enumerate(parsed):
            groups.setdefault(specs, []).append(i)
        if list(groups) == [()]:
            if self.lora_specs:  # an editing command's LoRAs: this prompt asks for none
                self.use_loras(())
            return draw(list(prompts), list(seeds))
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
        images: list[Any] = [None] * len(prompts)
        try:
            for specs, rows in groups.items():
                self.use_loras(specs)
                drawn = draw([parsed[i][0] for i in rows], [seeds[i] for i in rows])
                for i, image in zip(rows, drawn):
                    images[i] = image
        finally:
            self.use_loras(())
        return images

    @torch.no_grad()
    def interpolate(
        self,
        prompts: tuple[str, str],
        *,
        seeds: tuple[int, int],
        frames: int,
        options: SamplingOptions | None = None,
    ) -> list[Image.Image]:
        """``frames`` images from (prompts[0], seeds[0]) to (prompts[1], seeds[1]): the initial
        noise along the arc between the two seeds' (slerp), the text along the line between the
        prompts' embeddings; a stochastic sampler's per-step noise is seeds[0]'s in every frame,
        so only the path moves."""
        pipe = self.pipeline()
        weights = frame_weights(frames)
        (n0, n1), _ = pipe.initial_noise(list(seeds))
        encode = pipe.text_encoder.encode
        text = text_path(encode([prompts[0]]), encode([prompts[1]]), weights)
        latents = pipe.sample([prompts[0]] * frames, seeds=[seeds[0]] * frames,
                              options=options or self.defaults,
                              noise=noise_path(n0, n1, weights), text=text)  # fmt: skip
        return [tensor_to_pil(x) for x in pipe.decode(latents)]


def load_diffusion(
    folder: Path, data: dict[str, Any], *, device: str | torch.device = "cpu"
) -> Model:
    """The parts of a diffusion folder whose ``config.json`` is ``data``."""
    try:
        config = ModelConfig.from_dict(data)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder / 'config.json'} is not a valid model config ({err})") from None
    # Every image it makes at its own size must fit the budget.
    check_pixels(config.resolution, config.resolution, f"{folder.name}'s images")
    unet = build_and_load(lambda: UNet(config.unet), folder / "unet.safetensors", what="the UNet")
    vae = None
    if config.vae is not None:
        vae = build_and_load(lambda: AutoencoderKL(config.vae), folder / "vae.safetensors",
                             what="the autoencoder")  # fmt: skip
    if config.text_encoder.kind == "transformer":
        text_encoder = TrainableTextEncoder.load(folder / "text_encoder", device="cpu")
    else:
        text_encoder = build_text_encoder(config.text_encoder)
    model = Model(
        config, unet.eval(), text_encoder.eval(), vae.eval() if vae is not None else None, folder
    )
    for module in (model.unet, model.text_encoder, model.vae):
        if module is not None:
            module.to(device)
    return model


def save_model(
    model: Model, folder: str | Path, *, card: str, dtype: torch.dtype = torch.float32
) -> Path:
    """Write a model folder atomically file by file (config.json last).

    ``dtype=torch.float16`` halves the UNet and VAE files (the shipped models); loading casts
    them back to float32, so the shipped weights are exactly what gets measured.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.unet, out / "unet.safetensors", dtype=dtype)
    if model.vae is not None:
        save_weights(model.vae, out / "vae.safetensors", dtype=dtype)
    if isinstance(model.text_encoder, TrainableTextEncoder):
        model.text_encoder.save(out / "text_encoder")
    return write_folder(out, json.loads(model.config.to_json()), card)


class DiffusionKind(ModelKind):
    label = "text-to-image diffusion model"

    def load(self, folder: Path, config: dict[str, Any], *, device="cpu") -> Model:
        return load_diffusion(folder, config, device=device)

    def save(self, model: Model, folder: Path, *, card: str, dtype=torch.float32) -> Path:
        return save_model(model, folder, card=card, dtype=dtype)

    def facts(self, config: dict[str, Any]) -> Facts:
        title = "latent diffusion" if config.get("kind") == "latent" else "pixel diffusion"
        defaults = build_config(SamplingOptions, config.get("defaults", {}))
        return Facts(title, config.get("resolution"), True, option_specs(SamplingOptions),
                     defaults)  # fmt: skip

    def modules(self, model: Model) -> dict[str, nn.Module]:
        parts = {"text_encoder": model.text_encoder, "unet": model.unet}
        if model.vae is not None:
            parts["vae"] = model.vae
        return parts

    def renamed(self, model: Model, name: str) -> Model:
        return replace(model, config=replace(model.config, name=name))

    def with_defaults(self, model: Model, **changes: Any) -> Model:
        defaults = with_options(model.config.defaults, changes, who=model.config.name)
        return replace(model, config=replace(model.config, defaults=defaults))


KIND = DiffusionKind()
