"""``atelier train RECIPE``: build the data and task a recipe names, train, export a model folder.

Run state (checkpoints, logs, sample grids, caches) lives outside the work tree, under
``~/.cache/atelier`` by default; the exported model is written to ``<run>/model`` and installed
as ``~/.cache/atelier/models/<recipe name>``, where other recipes and ``--model`` find it by name.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch
from safetensors.torch import save
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.data.base import CaptionedImages
from atelier.data.folder import ImageFolderDataset
from atelier.data.hard_negatives import WithNegatives
from atelier.data.latents import LatentDataset, module_digest
from atelier.data.recaption import Recaptioned
from atelier.data.shapes import ShapesDataset
from atelier.eval.autoencoder import judge_reconstructions
from atelier.eval.clip_metrics import retrieval_recall, zero_shot_accuracy
from atelier.eval.shapes_probe import binding_accuracy, single_object_probe
from atelier.models.clip import CLIP
from atelier.models.discriminator import PatchDiscriminator
from atelier.models.latent_space import LatentSpace
from atelier.models.shapes_features import ShapesFeatureNet
from atelier.models.unet import UNet
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.paths import home
from atelier.pipelines.clip_folder import load_clip, save_clip
from atelier.pipelines.features_folder import save_feature_net
from atelier.pipelines.model_folder import Model, ModelConfig, resolve, save_model
from atelier.pipelines.upscale import Upscaler, UpscalerConfig, save_upscaler, upscaler_scores
from atelier.shapes.bench import load_suite
from atelier.text.factory import build_text_encoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger, TimestepLossLogger, process_cpu_seconds
from atelier.training.checkpoint import latest_good_checkpoint, tensors_with_prefix
from atelier.training.clip_task import CLIPTask
from atelier.training.features_task import CellTargets, FeatureNetTask
from atelier.training.ldm import InpaintingTask, LatentDiffusionTask
from atelier.training.loop import train
from atelier.training.recipes import Recipe, RecipeError
from atelier.training.sr_task import SuperResolutionTask
from atelier.training.vae_loss import measure_scale_factor
from atelier.training.vae_task import VAETask

SAMPLE_PROMPTS = 48


def folder_digest(folder: Path) -> str:
    """A key for a data folder's latent cache: its path and its files' names, sizes and times."""
    import hashlib

    digest = hashlib.sha256(str(folder.resolve()).encode())
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            st = file.stat()
            digest.update(f"{file.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _images(recipe: Recipe, data_dir: Path | None) -> CaptionedImages:
    """The recipe's shapes scenes, or a captioned image folder given with ``--data``."""
    d = recipe.data
    if data_dir is not None:
        return ImageFolderDataset(data_dir, resolution=d.resolution)
    return ShapesDataset(
        d.n,
        resolution=d.resolution,
        seed=d.seed,
        split="train",
        cache_dir=home() / "data",
        progress=True,
    )


def _final_weights(run_dir: Path, name: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A trained module's weights from the newest checkpoint, EMA weights where there are any."""
    checkpoint = latest_good_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}; train first")
    weights = tensors_with_prefix(checkpoint, f"model.{name}.")
    weights |= tensors_with_prefix(checkpoint, f"ema.{name}.")
    module.load_state_dict(weights)
    return weights


def _card(recipe: Recipe, total_cpu: float, body: str, *, cpu: str | None = None) -> str:
    """The model card. ``cpu`` replaces the CPU time line (see :func:`_cost`)."""
    command = "atelier train " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "atelier train"
    origin = "from scratch" if recipe.init_from is None else f"from {recipe.init_from}"
    cpu = cpu or f"{total_cpu / 3600:.2f} h (user + system, all sessions)"
    return (
        f"# {recipe.name}\n\nTrained by atelier {origin} on the shapes world.\n\n"
        f"- Reproduce: `{command}`\n- Training CPU time: {cpu}\n\n{body}\n\n## Recipe\n\n"
        f"```json\n{json.dumps(asdict(recipe), indent=2, default=str)}\n```\n"
    )


def run_vae(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None) -> Path:
    images = _images(recipe, data_dir)
    vae = AutoencoderKL(recipe.vae)
    discriminator = None
    if recipe.vae_loss.adversarial_weight > 0:
        discriminator = PatchDiscriminator(recipe.discriminator)
    samples = torch.stack([images[i][0] for i in range(8)])
    task = VAETask(vae, recipe.vae_loss, discriminator=discriminator, sample_images=samples)
    ledger = CPULedger()
    train(task, images, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    total = ledger.total
    _final_weights(run_dir, "vae", vae)
    vae.eval()
    held_out = ShapesDataset(256, resolution=recipe.data.resolution, seed=10_000, split="any")
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    with torch.no_grad():
        x_tilde = vae.decode(vae.encode(x).mode()).clamp(-1, 1)
    mse = float(((x - x_tilde) / 2).pow(2).mean())
    psnr = 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    scale = measure_scale_factor(vae, x[:256])
    ceiling = judge_reconstructions(vae, load_suite(), size=recipe.data.resolution)
    out = run_dir / "model"
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(
        out / "vae.safetensors", save({k: v.contiguous() for k, v in vae.state_dict().items()})
    )
    write_atomic(
        out / "config.json",
        json.dumps(
            {"kind": "vae", "name": recipe.name, "vae": asdict(recipe.vae), "latent_scale": scale},
            indent=2,
        ),
    )
    body = (
        f"## Metrics (256 held-out renders, any split)\n\n- reconstruction PSNR: {psnr:.2f} dB"
        f"\n- latent scale factor (1 / std of latents): {scale:.4f}"
        f"\n- judge pass rate on reconstructions of fresh renders of all {ceiling.images} "
        f"shapes-bench specs (the ceiling of any model decoding through it): "
        f"{ceiling.judge_pass:.3f}, PSNR {ceiling.psnr:.2f} dB"
    )
    write_atomic(out / "README.md", _card(recipe, total, body))
    return _install(out, recipe.name)


def _install(folder: Path, name: str) -> Path:
    target = home() / "models" / name
    target.mkdir(parents=True, exist_ok=True)
    for file in folder.iterdir():
        if file.is_file():
            write_atomic(target / file.name, file.read_bytes())
        elif file.is_dir():
            _install(file, f"{name}/{file.name}")
    return target


def load_vae(name: str) -> tuple[AutoencoderKL, float]:
    """A trained autoencoder folder (by name or path) and its latent scale."""
    folder = resolve(name)
    config = json.loads((folder / "config.json").read_text())
    if config.get("kind") != "vae":
        raise RecipeError(f"{folder} is not an autoencoder model folder")
    vae = AutoencoderKL(
        VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["vae"].items()})
    )
    from safetensors.torch import load_file

    vae.load_state_dict(load_file(str(folder / "vae.safetensors")))
    return vae.eval().requires_grad_(False), float(config["latent_scale"])


# Under the heading `atelier eval --card` replaces, so the placeholder never outlives the scores.
_METRICS_TODO = "\n\n## shapes-bench\n\nNot measured yet: run `atelier eval MODEL --card`."


def _cpu_hours_in_card(folder: Path) -> float | None:
    """The training CPU hours a model card states, if it states them."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    match = re.search(r"Training CPU time: (?:about )?([0-9.]+) h", card.read_text())
    return float(match.group(1)) if match else None


def _cost(recipe: Recipe, total_cpu: float) -> tuple[str, str | None]:
    """The training cost of a model with what it stands on: the model it fine-tunes (whose card
    already counts its own autoencoder or base), else the autoencoder of a latent model.
    Returns the card's cost section and its CPU time line, which states the sum, so that a
    model fine-tuned from this one in turn counts the whole chain."""
    hours = total_cpu / 3600
    trained = "image and text towers" if recipe.kind == "clip" else "UNet and text encoder"
    lines = [f"## Training cost\n\n- {recipe.name} ({trained}): {hours:.2f} CPU-h"]
    if recipe.init_from is not None:
        base, what = recipe.init_from, f"the model it fine-tunes, {recipe.init_from}"
    elif recipe.kind == "ldm":
        base, what = recipe.vae_model, f"its autoencoder {recipe.vae_model}"
    else:
        return lines[0], None
    base_hours = _cpu_hours_in_card(resolve(base))
    if base_hours is None:
        return lines[0], None
    lines.append(f"- {what}: {base_hours:.2f} CPU-h")
    lines.append(f"- in all: {hours + base_hours:.2f} CPU-h")
    headline = (f"{hours + base_hours:.2f} h in all ({hours:.2f} h for this run, "
                f"{base_hours:.2f} h for {what})")  # fmt: skip
    return "\n".join(lines), headline


def _with_base_architecture(recipe: Recipe) -> Recipe:
    """A fine-tune keeps its base model's UNet architecture, as diffusers' training scripts
    load the pretrained config; only ``in_channels`` stays the recipe's (inpainting adds
    inputs). Says which of the recipe's UNet settings the base's replaced."""
    base = ModelConfig.from_json((resolve(recipe.init_from) / "config.json").read_text())
    unet = replace(base.unet, in_channels=recipe.unet.in_channels)
    changed = [
        f"unet.{f.name}={getattr(unet, f.name)}"
        for f in fields(unet)
        if getattr(unet, f.name) != getattr(recipe.unet, f.name)
    ]
    if changed:
        kept = ", ".join(changed)
        print(f"fine-tuning {recipe.init_from} keeps its UNet: {kept}", file=sys.stderr)
    return replace(recipe, unet=unet)


def _base_space(recipe: Recipe, measured: LatentSpace) -> LatentSpace:
    """The latent space of the model a fine-tune starts from, if this data's latents
    (``measured``) are in it up to rounding; else a clear error. The one check of a base's
    space, for every latent normalisation and for pixel space."""
    base = ModelConfig.from_json((resolve(recipe.init_from) / "config.json").read_text())
    if not base.latent_space.matches(measured):
        raise RecipeError(
            f"{recipe.init_from} was trained on another latent space (its latent mean and std "
            f"{base.latent_space.mean}, {base.latent_space.std}; this data's {measured.mean}, "
            f"{measured.std}): fine-tune it with the autoencoder and data it was trained on"
        )
    return base.latent_space


def _init_from(recipe: Recipe, unet: UNet):
    """Start from a trained model (Stable Diffusion inpainting starts from the base model):
    load its UNet weights into ``unet``, with zero weights for any extra input channels, and
    return its text encoder (with its own tokenizer)."""
    from atelier.pipelines.model_folder import load_model

    base = load_model(recipe.init_from)
    state = base.unet.state_dict()
    weight = state["conv_in.weight"]
    target = unet.conv_in.weight
    if weight.shape[1] < target.shape[1]:
        grown = torch.zeros_like(target)
        # The base model's input channels (latents, then coordinates if any) keep their weights;
        # the new channels (mask, masked latents) sit between and start at zero.
        c = recipe.unet.in_channels - (target.shape[1] - weight.shape[1])
        grown[:, :c] = weight[:, :c]
        grown[:, target.shape[1] - (weight.shape[1] - c) :] = weight[:, c:]
        state["conv_in.weight"] = grown
    unet.load_state_dict(state)
    if base.config.text_encoder.kind != recipe.text_encoder.kind:
        raise RecipeError(
            f"{recipe.init_from} has a {base.config.text_encoder.kind} text encoder, the recipe "
            f"a {recipe.text_encoder.kind} one"
        )
    return base.text_encoder.train() if base.text_encoder.trainable else base.text_encoder


def run_ldm(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None) -> Path:
    images = _images(recipe, data_dir)
    vae, scale = load_vae(recipe.vae_model) if recipe.kind == "ldm" else (None, 1.0)
    if vae is not None:
        source = images.cache_key if isinstance(images, ShapesDataset) else folder_digest(data_dir)
        key = f"latents-{module_digest(vae)}-{source}.safetensors"
        data = LatentDataset(images, vae, scale=scale, cache_file=home() / "data" / key)
        if recipe.latent_norm == "per_channel":
            # The cache holds z * scale; measure the raw latents' channel statistics.
            space = LatentSpace.measure(data.latents / scale)
        else:
            space = LatentSpace(scale)
        if recipe.init_from is not None:
            # A fine-tune keeps its base's normalisation, which this data must match.
            space = _base_space(recipe, space)
        if recipe.latent_norm == "per_channel":
            data.latents = space.to_diffusion(data.latents / scale).float()
        factor = vae.config.downsampling_factor
        latent_shape = (
            vae.config.latent_channels,
            recipe.data.resolution // factor,
            recipe.data.resolution // factor,
        )
    else:
        data, latent_shape = images, (3, recipe.data.resolution, recipe.data.resolution)
        space = LatentSpace() if recipe.init_from is None else _base_space(recipe, LatentSpace())
    data = _recaptioned(recipe, images, data)
    if recipe.init_from is not None:
        torch.manual_seed(recipe.train.seed)
        unet = UNet(recipe.unet)
        text_encoder = _init_from(recipe, unet)
    else:
        tokenizer = None
        if recipe.text_encoder.kind == "transformer":
            tokenizer = train_bpe(_captions(data), vocab_size=recipe.bpe_vocab)
        torch.manual_seed(recipe.train.seed)
        text_encoder = build_text_encoder(recipe.text_encoder, tokenizer=tokenizer)
        unet = UNet(recipe.unet)
    if recipe.unet.context_dim != text_encoder.dim:
        raise RecipeError(
            f"unet.context_dim {recipe.unet.context_dim} must equal the text "
            f"encoder's width {text_encoder.dim}"
        )
    prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
    # The data preparation this process does (text states not yet on disk) counts as training.
    before = process_cpu_seconds()
    if isinstance(text_encoder, MiniLMTextEncoder):
        preload_text_states(text_encoder, ["", *_captions(data), *prompts], home() / "data")
    task_class = InpaintingTask if recipe.inpainting else LatentDiffusionTask
    task = task_class(
        unet=unet, text_encoder=text_encoder, diffusion=recipe.diffusion,
        objective=recipe.objective, latent_shape=latent_shape, vae=vae, latent_space=space,
        sample_prompts=prompts, sample_options=recipe.sampling,
    )  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(
        task,
        data,
        recipe.train,
        run_dir=run_dir,
        resume=resume,
        callbacks=[TimestepLossLogger(recipe.diffusion.n_train), ledger],
    )
    total = ledger.total
    for name, module in task.modules().items():
        _final_weights(run_dir, name, module)
    config = ModelConfig(
        name=recipe.name, kind="latent" if vae is not None else "pixel",
        resolution=recipe.data.resolution, unet=recipe.unet, text_encoder=recipe.text_encoder,
        diffusion=recipe.diffusion, vae=vae.config if vae is not None else None,
        latent_scale=space.scale, latent_mean=space.mean, latent_std=space.std,
        defaults=recipe.sampling,
    )  # fmt: skip
    model = Model(config, unet.eval(), text_encoder.eval(), vae)
    cost, headline = _cost(recipe, total)
    out = save_model(
        model,
        run_dir / "model",
        card=_card(recipe, total, cost + _METRICS_TODO, cpu=headline),
    )
    return _install(out, recipe.name)


def run_clip(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None) -> Path:
    images = _images(recipe, data_dir)
    torch.manual_seed(recipe.train.seed)
    if recipe.init_from is not None:
        clip = _clip_to_fine_tune(recipe)
    else:
        tokenizer = None
        if recipe.text_encoder.kind == "transformer":
            tokenizer = train_bpe(_captions(images), vocab_size=recipe.bpe_vocab)
        clip = CLIP(recipe.clip, build_text_encoder(recipe.text_encoder, tokenizer=tokenizer))
    size = recipe.clip.vision.image_size
    task = CLIPTask(clip, probe=single_object_probe(5, size=size))
    ledger = CPULedger()
    data = _with_negatives(recipe, images)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    total = ledger.total
    _final_weights(run_dir, "clip", clip)
    clip.eval()
    images_, labels, truth = single_object_probe(20, size=size)
    accuracy = zero_shot_accuracy(clip, images_, labels, truth)
    held_out = ShapesDataset(500, resolution=recipe.data.resolution, seed=10_000, split="any")
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    recall = retrieval_recall(clip, x, [held_out[i][1] for i in range(len(held_out))])
    binding = binding_accuracy(clip, scenes=2000, size=recipe.data.resolution)
    cost, headline = _cost(recipe, total)
    body = cost + (
        f"\n\n## Metrics\n\n- zero-shot accuracy, 18 classes (colour x shape), 20 fresh renders "
        f"each: {accuracy:.3f}\n- retrieval on 500 fresh scenes (any split), recall: "
        + ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
        + "\n- true caption above a hard negative (one fact changed), 2,000 fresh scenes: "
        + ", ".join(f"{k} {v:.3f}" for k, v in binding.items())
    )
    card = _card(recipe, total, body, cpu=headline)
    out = save_clip(clip, recipe.text_encoder, run_dir / "model", card=card)
    return _install(out, recipe.name)


def _clip_to_fine_tune(recipe: Recipe) -> CLIP:
    """The trained CLIP ``recipe.init_from`` names, checked to have the recipe's architecture."""
    try:
        clip = load_clip(recipe.init_from)
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(f"init_from={recipe.init_from}: {err}") from None
    if clip.config != recipe.clip:
        raise RecipeError(
            f"init_from={recipe.init_from} is a CLIP of another architecture ({clip.config}) "
            f"than the recipe's ({recipe.clip}); fine-tuning needs the same one"
        )
    return clip.train()


def _with_negatives(recipe: Recipe, images: CaptionedImages) -> CaptionedImages | WithNegatives:
    """``images`` with ``recipe.data.hard_negatives`` false captions per shapes scene."""
    k = recipe.data.hard_negatives
    if k == 0:
        return images
    if not isinstance(images, ShapesDataset):
        raise RecipeError(
            f"data.hard_negatives={k} needs the shapes world, which knows what makes a caption "
            "false; a --data folder has only true captions: drop the override"
        )
    negatives = [[text for text, _ in images.hard_negatives(i, k)]
                 for i in tqdm(range(len(images)), desc="hard negatives")]  # fmt: skip
    return WithNegatives(images, negatives)


def run_features(recipe: Recipe, run_dir: Path, *, resume: bool) -> Path:
    data = CellTargets(_images(recipe, None))
    torch.manual_seed(recipe.train.seed)
    net = ShapesFeatureNet(recipe.features)
    task = FeatureNetTask(net)
    ledger = CPULedger()
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    total = ledger.total
    _final_weights(run_dir, "features", net)
    held_out = CellTargets(
        ShapesDataset(1000, resolution=recipe.data.resolution, seed=10_000, split="any")
    )
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    with torch.no_grad():
        _, logs = FeatureNetTask(net.eval()).loss((x, held_out.targets), 0)
    body = (
        f"## Metrics (1000 fresh scenes, any split)\n\n- cell accuracy: "
        f"{logs['cell_accuracy']:.4f}\n- images with all 9 cells right: "
        f"{logs['image_accuracy']:.4f}"
    )
    out = save_feature_net(net, run_dir / "model", card=_card(recipe, total, body))
    return _install(out, recipe.name)


def run_upscaler(recipe: Recipe, run_dir: Path, *, resume: bool) -> Path:
    high, low = recipe.data.resolution, recipe.upscale_from
    data = _images(recipe, None)
    torch.manual_seed(recipe.train.seed)
    unet = UNet(recipe.unet)
    task = SuperResolutionTask(
        unet, recipe.diffusion, low=low, max_aug=recipe.max_aug,
        weighting=recipe.objective.weighting, crop=recipe.sr_crop,
    )  # fmt: skip
    ledger = CPULedger()
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    total = ledger.total
    _final_weights(run_dir, "unet", unet)
    config = UpscalerConfig(recipe.name, low, high, recipe.unet, recipe.diffusion,
                            max_aug=recipe.max_aug)  # fmt: skip
    n = min(64, recipe.data.n)
    scores = upscaler_scores(Upscaler(unet, config), n=n)
    body = f"## Metrics ({n} held-out renders)\n\n" + "\n".join(
        f"- {name}: PSNR {p:.2f} dB, SSIM {q:.4f}" for name, (p, q) in scores.items()
    )
    out = save_upscaler(unet, config, run_dir / "model", card=_card(recipe, total, body))
    return _install(out, recipe.name)


def _recaptioned(
    recipe: Recipe, images: CaptionedImages, data: CaptionedImages | LatentDataset
) -> CaptionedImages | LatentDataset | Recaptioned:
    """``data`` with ``recipe.data.captions_per_image`` captions per shapes scene."""
    k = recipe.data.captions_per_image
    if k == 1:
        return data
    if not isinstance(images, ShapesDataset):
        raise RecipeError(
            f"data.captions_per_image={k} needs the shapes world, which can write more captions "
            "of a scene; a --data folder has one caption per image: drop the override"
        )
    variants = [images.caption_variants(i, k) for i in tqdm(range(len(images)), desc="captions")]
    return Recaptioned(data, variants)


def _captions(data: CaptionedImages | LatentDataset | Recaptioned) -> list[str]:
    """Every item's caption: the list a dataset keeps (latents, rendered shapes), else each
    item's second half."""
    kept = getattr(data, "captions", None)
    return list(kept) if kept is not None else [data[i][1] for i in range(len(data))]


def run_recipe(
    recipe: Recipe, *, out: Path | None = None, resume: bool = False, data_dir: Path | None = None
) -> Path:
    """Train ``recipe`` into ``out`` (default: under ~/.cache/atelier/runs); return its model."""
    if recipe.data.hard_negatives and recipe.kind != "clip":
        raise RecipeError(
            f"data.hard_negatives is for contrastive (CLIP) recipes; {recipe.name} is a "
            f"{recipe.kind} recipe: drop the override"
        )
    run_dir = out if out is not None else home() / "runs" / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.init_from is not None and recipe.kind in ("ldm", "pixel"):
        recipe = _with_base_architecture(recipe)
    write_atomic(run_dir / "recipe.json", json.dumps(asdict(recipe), indent=2, default=str))
    began = time.time()
    if recipe.kind == "vae":
        path = run_vae(recipe, run_dir, resume=resume, data_dir=data_dir)
    elif recipe.kind == "clip":
        path = run_clip(recipe, run_dir, resume=resume, data_dir=data_dir)
    elif recipe.kind == "features":
        path = run_features(recipe, run_dir, resume=resume)
    elif recipe.kind == "upscaler":
        path = run_upscaler(recipe, run_dir, resume=resume)
    else:
        path = run_ldm(recipe, run_dir, resume=resume, data_dir=data_dir)
    print(f"trained {recipe.name} in {(time.time() - began) / 60:.1f} min; model: {path}")
    return path
