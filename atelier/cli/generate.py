"""``atelier generate`` and ``atelier replay``: text to PNGs that carry their own recipe."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import typer
from PIL import Image
from tqdm import tqdm

from atelier.cli.errors import fail
from atelier.diffusion.samplers import SAMPLER_NAMES
from atelier.pipelines.composable import split_and
from atelier.pipelines.metadata import GenerationParams, read_params, save_png
from atelier.pipelines.model_folder import DEFAULT_MODEL, Model, load_model
from atelier.pipelines.text2image import SamplingOptions
from atelier.text.window import PromptTruncatedWarning


def read_prompts(path: Path) -> list[str]:
    """Prompts from a .txt file (one a line) or a .jsonl file (a ``prompt`` field a line)."""
    if not path.is_file():
        raise fail(f"no prompts file at {path}")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        prompts = []
        for number, line in enumerate(lines, start=1):
            try:
                prompts.append(str(json.loads(line)["prompt"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise fail(f"{path} line {number} is not JSON with a 'prompt' field") from None
    elif path.suffix == ".txt":
        prompts = [line.strip() for line in lines]
    else:
        raise fail(f"--prompts takes a .txt or .jsonl file, not {path.suffix or path.name}")
    if not prompts:
        raise fail(f"{path} holds no prompts")
    return prompts


def _load(model: str) -> Model:
    try:
        return load_model(model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def _pipeline_for(loaded: Model, size: int | None):
    pipe = loaded.pipeline()
    if size is None or size == loaded.config.resolution:
        return pipe, loaded.config.resolution
    factor = loaded.config.vae.downsampling_factor if loaded.config.vae is not None else 1
    multiple = factor * 2 ** (len(loaded.config.unet.block_channels) - 1)
    if size < multiple or size % multiple:
        raise fail(
            f"--size {size} cannot be made by this model: use a multiple of {multiple} "
            f"(it was trained at {loaded.config.resolution})"
        )
    channels = pipe.latent_shape[0]
    pipe.latent_shape = (channels, size // factor, size // factor)
    return pipe, size


def ranking_clip(candidates: int, rerank: str | None, clip_model: str):
    """The CLIP that chooses among ``candidates`` (None for one candidate), the options checked."""
    from atelier.pipelines.clip_folder import load_clip

    if candidates < 1:
        raise fail("--candidates must be at least 1")
    if rerank not in (None, "clip"):
        raise fail(f"--rerank {rerank!r} is not known; valid: clip")
    if candidates > 1 and rerank is None:
        raise fail("--candidates N > 1 needs --rerank clip to say how to choose")
    if candidates == 1:
        return None
    try:
        return load_clip(clip_model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(f"--rerank clip needs a CLIP model: {err}") from None


def reranker_for(pipe, candidates: int, rerank: str | None, clip_model: str):
    """The pipeline drawing ``candidates`` per image (a plain one keeps candidate 0 only)."""
    from atelier.pipelines.rerank import RerankedText2Image

    return RerankedText2Image(pipe, ranking_clip(candidates, rerank, clip_model), candidates)


def ranked_extra(choice, requested: int, candidates: int, rerank: str | None) -> dict:
    """What a reranked image's PNG records beside its own (kept) seed."""
    if candidates == 1:
        return {}
    return {"rerank": rerank, "candidates": candidates, "requested_seed": requested,
            "clip_score": round(choice.score, 4)}  # fmt: skip


def render(loaded: Model, params: GenerationParams, options: SamplingOptions) -> Image.Image:
    """One image for ``params`` (used by generate's batches and by replay)."""
    from atelier.pipelines.upscale import cascade_stages, run_cascade

    sizes = params.extra.get("cascade")
    pipe, _ = _pipeline_for(loaded, sizes[0] if sizes else params.width)
    image = pipe(
        [params.prompt],
        seeds=[params.seed],
        negative_prompt=params.negative_prompt,
        options=options,
    )[0]
    return run_cascade([image], [params.seed], cascade_stages(sizes))[0] if sizes else image


def _cascade(spec: str | None, hires: bool, base: int) -> list[int] | None:
    """``--cascade 32,64,128`` or ``--hires`` (the model's size, then twice it) as sizes."""
    if spec and hires:
        raise fail("give --cascade or --hires, not both")
    if hires:
        return [base, 2 * base]
    if not spec:
        return None
    try:
        sizes = [int(v) for v in spec.split(",")]
    except ValueError:
        raise fail(f"--cascade takes sizes like 32,64,128, got {spec!r}") from None
    if sizes[0] != base:
        raise fail(f"--cascade starts at the base model's size: this model makes {base} px")
    return sizes


def generate(
    prompt: str = typer.Argument(None, help="What to draw (or use --prompts)."),
    prompts_file: Path = typer.Option(None, "--prompts", help=".txt (a prompt a line) or .jsonl"),
    n: int = typer.Option(1, "-n", help="Images per prompt."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first image; each next image +1."),
    steps: int = typer.Option(None, "--steps", help="Sampler steps (default: the model's)."),
    guidance: float = typer.Option(None, "--guidance", help="CFG scale (default: the model's)."),
    guidance_rescale: float = typer.Option(
        None, "--guidance-rescale", help="CFG rescale phi in [0, 1] (default: the model's)."
    ),
    sampler: str = typer.Option(None, "--sampler", help=f"One of {', '.join(SAMPLER_NAMES)}."),
    negative: str = typer.Option("", "--negative", help="Negative prompt."),
    size: int = typer.Option(None, "--size", help="Image side in pixels (default: the model's)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder."),
    output: Path = typer.Option(Path("out/generate"), "-o", "--output", help="Output folder."),
    batch: int = typer.Option(8, "--batch", help="Images sampled together (pixels unchanged)."),
    candidates: int = typer.Option(1, "--candidates", help="Candidates drawn per image."),
    rerank: str = typer.Option(None, "--rerank", help="Keep the best candidate by: clip."),
    clip_model: str = typer.Option("shapes-clip", "--clip-model", help="CLIP for --rerank clip."),
    cascade: str = typer.Option(None, "--cascade", help="Upscale through sizes, e.g. 32,64,128."),
    hires: bool = typer.Option(False, "--hires", help="Hires fix: upscale the result 2x."),
) -> None:
    """Generate images from text; prints each PNG's path on its own line."""
    if (prompt is None) == (prompts_file is None):
        raise fail("give a PROMPT or --prompts FILE (exactly one)")
    if n < 1 or batch < 1:
        raise fail("-n and --batch must be at least 1")
    prompts = [prompt] if prompt is not None else read_prompts(prompts_file)
    try:
        for p in prompts:
            split_and(p)  # AUTOMATIC1111's AND: every sub-prompt must hold text
    except ValueError as err:
        raise fail(str(err)) from None
    loaded = _load(model)
    defaults = loaded.config.defaults
    try:
        options = defaults.overridden(
            steps=steps, guidance=guidance, sampler=sampler, guidance_rescale=guidance_rescale
        )
    except ValueError as err:
        raise fail(str(err)) from None
    pipe, side = _pipeline_for(loaded, size)
    reranker = reranker_for(pipe, candidates, rerank, clip_model)
    sizes = _cascade(cascade, hires, side)
    stages = []
    if sizes:
        from atelier.pipelines.upscale import cascade_stages, run_cascade

        try:
            stages = cascade_stages(sizes)
        except (FileNotFoundError, ValueError) as err:
            raise fail(str(err)) from None
    jobs = [(p, seed + k) for k, p in enumerate(q for q in prompts for _ in range(n))]
    output.mkdir(parents=True, exist_ok=True)
    model_hash = loaded.model_hash
    start = len(list(output.glob("*.png")))
    bar = tqdm(total=len(jobs) * options.steps * candidates, unit="step", desc="generating")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptTruncatedWarning)
        for first in range(0, len(jobs), batch):
            chunk = jobs[first : first + batch]
            choices = reranker.choose(
                [p for p, _ in chunk],
                seeds=[s for _, s in chunk],
                negative_prompt=negative,
                options=options,
                callback=lambda info, k=len(chunk) * candidates: bar.update(k),
            )
            if stages:
                finals = run_cascade([c.image for c in choices], [c.seed for c in choices], stages)
            else:
                finals = [c.image for c in choices]
            for k, ((p, requested), choice, image) in enumerate(
                zip(chunk, choices, finals), start=first
            ):
                s = choice.seed
                ranked = ranked_extra(choice, requested, candidates, rerank)
                params = GenerationParams.of(
                    image, prompt=p, seed=s, options=options, model=loaded.config.name,
                    model_hash=model_hash, negative_prompt=negative,
                    extra={"model_path": str(loaded.path), **ranked,
                           **({"cascade": sizes} if sizes else {})},
                )  # fmt: skip
                path = save_png(image, output / f"{start + k:05d}-{s}.png", params)
                tqdm.write(str(path))
    bar.close()
    for warning in {str(w.message) for w in caught if w.category is PromptTruncatedWarning}:
        typer.echo(f"warning: {warning}", err=True)


def replay(image: Path = typer.Argument(..., help="A PNG written by atelier generate.")) -> None:
    """Regenerate an image from its embedded parameters and report whether the pixels match."""
    try:
        params = read_params(image)
    except (ValueError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    if params.mode != "txt2img":
        raise fail(
            f"{image} was made by {params.mode}, which needs its source image; replay "
            "regenerates text-to-image PNGs only"
        )
    source = params.extra.get("model_path") or params.model
    loaded = _load(source if Path(source).is_dir() else params.model)
    if loaded.model_hash != params.model_hash:
        typer.echo(
            f"warning: model hash {loaded.model_hash} differs from the image's "
            f"{params.model_hash}; pixels will likely differ",
            err=True,
        )
    options = SamplingOptions(
        steps=params.steps,
        guidance=params.guidance,
        sampler=params.sampler,
        spacing=params.extra.get("spacing", "trailing"),
        karras=bool(params.extra.get("karras", False)),
        guidance_rescale=float(params.extra.get("guidance_rescale", 0.0)),
    )
    again = np.asarray(render(loaded, params, options), dtype=np.int16)
    with Image.open(image) as img:
        original = np.asarray(img.convert("RGB"), dtype=np.int16)
    if again.shape == original.shape and (again == original).all():
        typer.echo(f"pixels match: {image}")
        return
    diff = np.abs(again - original).max() if again.shape == original.shape else "shape"
    typer.echo(f"pixels differ (max |delta| {diff}): {image}")
    raise typer.Exit(1)
