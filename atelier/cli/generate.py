"""``atelier generate`` and ``atelier replay``: text to PNGs that carry their own recipe."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from atelier.budget import check_images, check_pixels, check_prompt, check_seed
from atelier.cli.common import (
    DIFFUSION_PANEL,
    EMBEDDING,
    GUIDANCE,
    GUIDANCE_RESCALE,
    LORA,
    OPTION,
    STEERING_PANEL,
    STEPS,
    chosen_seed,
    generator_options,
    load_generator,
    options_for,
    personalised,
    ranked_extra,
    reranker,
    steer,
    steering_spec,
)
from atelier.cli.errors import fail, writable_folder
from atelier.diffusion.sampler_names import SAMPLER_NAMES
from atelier.kinds.default import DEFAULT_MODEL

if TYPE_CHECKING:
    from PIL import Image

    from atelier.kinds.base import TextToImage
    from atelier.pipelines.metadata import GenerationParams

# Truncation warnings shown per command: a prompts file of long lines must not flood the terminal.
MAX_WARNINGS = 5


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


def render(model: TextToImage, params: GenerationParams, options: Any) -> Image.Image:
    """One image for ``params`` (used by generate's batches and by replay)."""
    from atelier.kinds.upscaler import cascade_stages
    from atelier.pipelines.upscale import run_cascade

    sizes = params.extra.get("cascade")
    image = model(
        [params.prompt],
        seeds=[params.seed],
        negative_prompt=params.negative_prompt,
        options=options,
        size=sizes[0] if sizes else params.width,
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
    seed: int = typer.Option(
        0, "--seed", help="Seed of the first image; each next image +1; -1 draws one at random."
    ),
    steps: int = STEPS,
    guidance: float = GUIDANCE,
    guidance_rescale: float = GUIDANCE_RESCALE,
    sampler: str = typer.Option(
        None,
        "--sampler",
        help=f"One of {', '.join(SAMPLER_NAMES)}.",
        rich_help_panel=DIFFUSION_PANEL,
    ),  # fmt: skip
    option: list[str] = OPTION,
    negative: str = typer.Option("", "--negative", help="Negative prompt."),
    size: int = typer.Option(None, "--size", help="Image side in pixels (default: the model's)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder."),
    output: Path = typer.Option(Path("out/generate"), "-o", "--output", help="Output folder."),
    batch: int = typer.Option(8, "--batch", help="Images sampled together (pixels unchanged)."),
    candidates: int = typer.Option(1, "--candidates", help="Candidates drawn per image."),
    rerank: str = typer.Option(None, "--rerank", help="Keep the best candidate by: clip."),
    clip_model: str = typer.Option(
        "shapes-clip",
        "--clip-model",
        help="CLIP for --rerank clip and --clip-guidance (a noised CLIP guides at x_t).",
    ),
    clip_guidance: float = typer.Option(
        None,
        "--clip-guidance",
        rich_help_panel=STEERING_PANEL,
        help="CLIP guidance scale (notebook convention: 100 mild, 1000 strong; with a noised "
        "CLIP a classifier-guidance scale, 1 to 10).",
    ),
    cutouts: int = typer.Option(
        8, "--cutouts", rich_help_panel=STEERING_PANEL, help="CLIP guidance: cutouts per step."
    ),
    cut_power: float = typer.Option(
        1.0,
        "--cut-power",
        rich_help_panel=STEERING_PANEL,
        help="CLIP guidance: cutout size power (>1: smaller).",
    ),
    tv_scale: float = typer.Option(
        0.0,
        "--tv-scale",
        rich_help_panel=STEERING_PANEL,
        help="CLIP guidance: total-variation penalty.",
    ),
    range_scale: float = typer.Option(
        50.0,
        "--range-scale",
        rich_help_panel=STEERING_PANEL,
        help="CLIP guidance: penalty on values outside [-1, 1].",
    ),
    classifier_guidance: float = typer.Option(
        None,
        "--classifier-guidance",
        rich_help_panel=STEERING_PANEL,
        help="Noise-aware classifier guidance scale (toward the prompt's cells).",
    ),
    classifier_model: str = typer.Option(
        None,
        "--classifier-model",
        rich_help_panel=STEERING_PANEL,
        help="Noise-aware classifier (default shapes-classifier-noised).",
    ),
    cascade: str = typer.Option(None, "--cascade", help="Upscale through sizes, e.g. 32,64,128."),
    hires: bool = typer.Option(False, "--hires", help="Hires fix: upscale the result 2x."),
    lora: list[str] = LORA,
    embedding: list[str] = EMBEDDING,
) -> None:
    """Generate images from text; prints each PNG's path on its own line."""
    from tqdm import tqdm

    from atelier.pipelines.composable import split_and
    from atelier.pipelines.metadata import GenerationParams, save_numbered_png
    from atelier.text.window import PromptTruncatedWarning

    if (prompt is None) == (prompts_file is None):
        raise fail("give a PROMPT or --prompts FILE (exactly one)")
    if n < 1 or batch < 1:
        raise fail("-n and --batch must be at least 1")
    prompts = [prompt] if prompt is not None else read_prompts(prompts_file)
    try:
        for p in prompts:
            check_prompt(p)
            split_and(p)  # AUTOMATIC1111's AND: every sub-prompt must hold text
        seed = chosen_seed(seed)
        check_seed(seed + len(prompts) * n - 1)
        check_images(len(prompts) * n * max(candidates, 1))
    except ValueError as err:
        raise fail(str(err)) from None
    steering = steering_spec(clip_guidance, clip_model, classifier_guidance, classifier_model,
                             cutouts=cutouts, cut_power=cut_power, tv_scale=tv_scale,
                             range_scale=range_scale)  # fmt: skip
    # Everything the model's config.json can tell is checked before its weights load.
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler,
             "guidance_rescale": guidance_rescale}  # fmt: skip
    listed, options, loaded = generator_options(model, flags, option)
    if steering is not None and listed.kind not in ("latent", "pixel"):
        raise fail(f"--{steering.method}-guidance steers diffusion models; {model} is a "
                   f"{listed.facts.title} model")  # fmt: skip
    side = size or listed.facts.resolution
    sizes = _cascade(cascade, hires, side)
    try:
        check_pixels(side, side, f"--size {side}")
        if sizes:
            check_pixels(sizes[-1], sizes[-1], f"the cascade's last size {sizes[-1]}")
    except ValueError as err:
        raise fail(str(err)) from None
    stages = []
    if sizes:
        from atelier.kinds.upscaler import cascade_stages
        from atelier.pipelines.upscale import run_cascade

        try:
            stages = cascade_stages(sizes)
        except (FileNotFoundError, ValueError) as err:
            raise fail(str(err)) from None
    writable_folder(output)
    loaded = loaded or load_generator(model)
    prompts = personalised(loaded, prompts, lora, embedding)
    loaded = steer(loaded, steering)
    drawing = reranker(loaded, candidates, rerank, clip_model)
    jobs = [(p, seed + k) for k, p in enumerate(q for q in prompts for _ in range(n))]
    model_hash = loaded.model_hash
    # Each sampler step advances the bar by its share of the chunk's images: the count is
    # fractional, so it is shown to one decimal and kept from overshooting by float rounding.
    bar = tqdm(
        total=len(jobs) * candidates, unit="image", desc="generating",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]",
    )  # fmt: skip

    def advance(share: float) -> None:
        bar.n = min(bar.total, bar.n + share)
        bar.refresh()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptTruncatedWarning)
        for first in range(0, len(jobs), batch):
            chunk = jobs[first : first + batch]
            try:
                choices = drawing.choose(
                    [p for p, _ in chunk],
                    seeds=[s for _, s in chunk],
                    negative_prompt=negative,
                    options=options,
                    callback=lambda info, k=len(chunk) * candidates: advance(k / info.total),
                    size=side,
                )
            except (FileNotFoundError, ValueError) as err:  # a size it cannot make, a LoRA
                raise fail(str(err)) from None
            if stages:
                finals = run_cascade([c.image for c in choices], [c.seed for c in choices], stages)
            else:
                finals = [c.image for c in choices]
            for (p, requested), choice, image in zip(chunk, choices, finals):
                s = choice.seed
                ranked = ranked_extra(choice, requested, candidates, rerank)
                params = GenerationParams.of(
                    image, prompt=p, seed=s, options=options, model=loaded.name,
                    model_hash=model_hash, negative_prompt=negative,
                    extra={**ranked, **({"cascade": sizes} if sizes else {}),
                           **({"steer": steering.to_record()} if steering else {})},
                )  # fmt: skip
                path = save_numbered_png(image, output, str(s), params)
                tqdm.write(str(path))
    bar.close()
    shown = sorted({str(w.message) for w in caught if w.category is PromptTruncatedWarning})
    for warning in shown[:MAX_WARNINGS]:
        typer.echo(f"warning: {warning}", err=True)
    if len(shown) > MAX_WARNINGS:
        typer.echo(f"warning: {len(shown) - MAX_WARNINGS} more prompts were truncated", err=True)


def _find_model(params: GenerationParams, given: str | None) -> TextToImage:
    """The model that made ``params``: ``given``, else the model of its name, else (when that
    one's hash differs, e.g. it was retrained) any known text-to-image model with its hash."""
    from atelier.kinds.registry import list_models, load_text_to_image

    if given is not None:
        return load_generator(given)
    try:
        named = load_text_to_image(params.model)
    except (FileNotFoundError, ValueError):
        named = None
    if named is not None and named.model_hash == params.model_hash:
        return named
    for listed in list_models():
        if listed.facts.text_to_image and listed.name != params.model:
            other = load_text_to_image(listed.path)
            if other.model_hash == params.model_hash:
                return other
    if named is None:
        raise fail(
            f"no model named {params.model!r} (hash {params.model_hash}) is installed here; "
            "pass --model NAME_OR_FOLDER to replay with another"
        )
    return named


def replay(
    image: Path = typer.Argument(..., help="A PNG written by atelier generate."),
    model: str = typer.Option(
        None, "--model", help="Model name or folder (default: found by the PNG's name and hash)."
    ),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="Replay with the UNet compiled, as an image drawn by `serve --compile` was (a bf16 "
        "one is checked only so); a minute or more of compiling.",
    ),
) -> None:
    """Regenerate an image from its embedded parameters and report whether the pixels match."""
    import numpy as np
    from PIL import Image

    from atelier.pipelines.metadata import COMPILED_BF16_SPREAD, COMPILED_TOLERANCE, read_params

    try:
        params = read_params(image)
    except (ValueError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    if params.mode != "txt2img":
        raise fail(
            f"{image} was made by {params.mode}, which needs its source image; replay "
            "regenerates text-to-image PNGs only"
        )
    # A PNG may come from anyone: its numbers are checked before any model loads.
    try:
        check_prompt(params.prompt)
        check_seed(params.seed)
        sizes = params.extra.get("cascade") or [params.width]
        if not isinstance(sizes, list) or not all(isinstance(v, int) for v in sizes):
            raise ValueError(f"the cascade sizes {sizes!r} are not a list of sizes")
        for side in (params.width, params.height, *sizes):
            check_pixels(side, side, f"the image's size {side}")
    except ValueError as err:
        raise fail(f"{image}: {err}") from None
    loaded = _find_model(params, model)
    if loaded.model_hash != params.model_hash:
        typer.echo(
            f"warning: model hash {loaded.model_hash} differs from the image's "
            f"{params.model_hash}; pixels will likely differ",
            err=True,
        )
    options = options_for(loaded.name, loaded.defaults, params.options)
    if compile:
        if not hasattr(loaded, "compile"):
            raise fail(f"--compile compiles diffusion models; {loaded.name} is not one")
        try:
            loaded.compile()
        except RuntimeError as err:
            raise fail(str(err)) from None
    if "steer" in params.extra:
        from atelier.kinds.steering import SteerSpec

        try:
            spec = SteerSpec.from_record(params.extra["steer"])
        except ValueError as err:
            raise fail(f"{image}: {err}") from None
        loaded = steer(loaded, spec)
    try:
        again = np.asarray(render(loaded, params, options), dtype=np.int16)
    except (ValueError, FileNotFoundError) as err:
        raise fail(f"cannot replay {image}: {err}") from None
    with Image.open(image, formats=["PNG"]) as img:
        original = np.asarray(img.convert("RGB"), dtype=np.int16)
    if again.shape == original.shape and (again == original).all():
        typer.echo(f"pixels match: {image}")
        return
    diff = int(np.abs(again - original).max()) if again.shape == original.shape else None
    runtimes = ("compiled" if params.compiled else "eager", getattr(loaded, "runtime", "eager"))
    if diff is None or runtimes[0] == runtimes[1]:
        typer.echo(f"pixels differ (max |delta| {'shape' if diff is None else diff}): {image}")
        raise typer.Exit(1)
    # Inductor's kernels round otherwise than eager ones: measured, fp32 images stay within
    # COMPILED_TOLERANCE levels, bf16 ones do not, so those are not judged.
    how = f"drawn {runtimes[0]}, replayed {runtimes[1]}"
    precision = getattr(options, "precision", "fp32")
    if precision != "fp32":
        typer.echo(f"pixels cannot be checked (max |delta| {diff}; {how}: in {precision} they "
                   f"differ by up to {COMPILED_BF16_SPREAD} levels; replay in the image's runtime, "
                   f"{'with' if params.compiled else 'without'} --compile): {image}")  # fmt: skip
        raise typer.Exit(1)
    if diff <= COMPILED_TOLERANCE:
        typer.echo(f"pixels match within the compiled tolerance ({COMPILED_TOLERANCE} levels; "
                   f"max |delta| {diff}; {how}): {image}")  # fmt: skip
        return
    typer.echo(f"pixels differ (max |delta| {diff}, beyond the compiled tolerance of "
               f"{COMPILED_TOLERANCE} levels; {how}): {image}")  # fmt: skip
    raise typer.Exit(1)
