"""``atelier img2img | inpaint | outpaint | variations``: editing commands.

Each writes PNGs carrying the AUTOMATIC1111-style ``parameters`` chunk (with the mode and its
settings) and the exact JSON chunk, and prints each path on its own line. img2img, inpaint and
outpaint take ``--candidates N --rerank clip``: N edits per image, CLIP keeps the one that fits
the prompt best (DALL-E's reranking), and the PNG records the kept candidate's own seed.

inpaint and outpaint take a diffusion model or a token model (DALL-E, MaskGIT), which masks the
tokens of the region (``pipelines/token_editing.py``); ``--option NAME=VALUE`` sets any option of
the model's kind. A token model's grid is fixed: it edits images of its own size only, and
refuses diffusion's flags (``--sampler``, ``--method trained``, ``--jump``, ``--resample``).

variations takes a diffusion model (img2img of the image under its caption, ``--strength``) or
an unCLIP model, whose decoder draws the image's own CLIP embedding again with each new seed
(DALL-E 2); ``--toward CAPTION --away CAPTION --amount A`` first moves that embedding along the
difference of the two captions' (DALL-E 2's text diffs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from atelier.budget import check_images, check_pixels, check_seed
from atelier.cli.common import (
    EMBEDDING,
    GUIDANCE,
    LORA,
    OPTION,
    STEPS,
    chosen_seed,
    describe_generator,
    load_diffusion,
    load_generator,
    options_for,
    painter_options,
    personalised,
    ranked_extra,
    ranking_scorer,
)
from atelier.cli.errors import fail, open_image, writable_folder
from atelier.kinds.default import DEFAULT_MODEL

if TYPE_CHECKING:
    from PIL import Image

    from atelier.diffusion.options import SamplingOptions
    from atelier.kinds.base import TextToImage
    from atelier.kinds.diffusion import Model
    from atelier.kinds.token_model import TokenModel
    from atelier.pipelines.editing import Editor
    from atelier.pipelines.rerank import Choice

MODEL = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder.")
SEED = typer.Option(
    0, "--seed", help="Seed of the first image; each next image +1; -1 draws one at random."
)
SAMPLER = typer.Option(
    None, "--sampler",
    help="Sampler (default: the model's; img2img and variations take its deterministic form).",
)  # fmt: skip
OUTPUT = typer.Option(Path("out/edit"), "-o", "--output", help="Output folder.")
CANDIDATES = typer.Option(1, "--candidates", help="Edits drawn per image (needs --rerank).")
RERANK = typer.Option(None, "--rerank", help="Keep the best candidate by: clip.")
CLIP_MODEL = typer.Option("shapes-clip", "--clip-model", help="CLIP for --rerank clip.")


def _open_mask(path: Path) -> Image.Image:
    """The mask as its file holds it (grey levels and alpha mean something), opened only in the
    formats the dataset loader takes and only after its header's size is within the budget."""
    from PIL import Image

    from atelier.data.images import IMAGE_FORMATS

    if not path.is_file():
        raise fail(f"no mask file at {path}")
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as mask:
            check_pixels(*mask.size, what=f"the mask {path.name}")
            mask.load()
            return mask.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise fail(f"cannot use {path} as the mask ({err})") from None


def _seeds(seed: int, count: int) -> list[int]:
    """``count`` seeds from ``seed`` (-1: drawn at random), or exit 2 naming the problem."""
    first = chosen_seed(seed)
    try:
        check_images(count)
        check_seed(first + count - 1)
    except ValueError as err:
        raise fail(str(err)) from None
    return [first + k for k in range(count)]


def _note_size(source: Image.Image, loaded: Model) -> None:
    """Warn (stderr) when ``source`` is not the size the model was trained on: a network run at
    another size keeps less of it (shapes-pixel, trained at 32 px, left visible noise in a 64 px
    img2img at strength 0.3)."""
    side = loaded.config.resolution
    if source.size != (side, side):
        typer.echo(
            f"note: {loaded.config.name} was trained on {side} x {side} px images and this one "
            f"is {source.width} x {source.height}; the edit may come out noisy or unfaithful. "
            f"Resize the image to {side} x {side} px, or use a model trained at its size.",
            err=True,
        )


def _editor(
    model: str, steps, guidance, sampler, *, keeps_source: bool = False
) -> tuple[Model, SamplingOptions, Editor]:
    """The model, its sampling options with the command's overrides, and an editor on it.
    ``keeps_source`` (img2img, variations): the model's sampler made deterministic."""
    from atelier.pipelines.editing import Editor, source_keeping

    loaded = load_diffusion(model, "editing")
    base = source_keeping(loaded.defaults) if keeps_source else loaded.defaults
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler}
    return loaded, options_for(loaded.name, base, flags), Editor(loaded.pipeline())


def _token_flags(loaded: TokenModel, *, method: str, jump: int, resample: int) -> None:
    """Exit 2 naming the flags of diffusion inpainting given with a token model."""
    if method not in ("masked", "trained"):
        raise fail(f"unknown inpainting method {method!r}; valid: masked, trained")
    diffusion_only = {"--method trained": method == "trained", "--jump": jump != 0,
                      "--resample": resample != 1}  # fmt: skip
    given = [flag for flag, used in diffusion_only.items() if used]
    if given:
        one = len(given) == 1
        raise fail(f"{loaded.name} is a {loaded.family.label}, which inpaints by masking the "
                   f"tokens of the region: {', '.join(given)} belong{'s' if one else ''} to "
                   f"diffusion inpainting; leave {'it' if one else 'them'} out")  # fmt: skip


def _save(images, prompts, seeds, loaded: TextToImage, options, output: Path, mode: str,
          extra: dict, ranked: list[dict] | None = None):  # fmt: skip
    from atelier.pipelines.metadata import GenerationParams, save_numbered_png

    for k, (image, prompt, seed) in enumerate(zip(images, prompts, seeds)):
        params = GenerationParams.of(
            image, prompt=prompt, seed=seed, options=options, model=loaded.name,
            model_hash=loaded.model_hash, mode=mode,
            extra={**extra, **(ranked[k] if ranked else {})},
        )  # fmt: skip
        typer.echo(str(save_numbered_png(image, output, f"{mode}-{seed}", params)))


def _adapted(loaded: TextToImage, prompt: str, loras: list[str], embeddings: list[str]
             ) -> tuple[str, str]:  # fmt: skip
    """The prompt as the PNG records it (with ``<lora:...>`` tags for ``--lora``) and as the
    editor reads it, the tags' LoRAs attached to a diffusion model (``kinds/diffusion.py``)."""
    from atelier.kinds.diffusion import Model

    tagged = personalised(loaded, [prompt], loras, embeddings)[0]
    if not isinstance(loaded, Model):
        return tagged, tagged
    try:
        return tagged, loaded.take_loras(tagged)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def _run(fn):
    try:
        return fn()
    except ValueError as err:
        raise fail(str(err)) from None


def _best(draw, prompt: str, seeds: list[int], candidates: int, how: str | None, clip_model: str,
          ) -> tuple[list[Choice], list[dict]]:  # fmt: skip
    """``draw(seeds)`` edits, ``candidates`` per requested seed, CLIP's pick of each; and what
    each pick's PNG records about the choice."""
    from atelier.pipelines.rerank import rerank

    score = ranking_scorer(candidates, how, clip_model)
    choices = _run(lambda: rerank(lambda _, s: draw(s), [prompt] * len(seeds), seeds, score,
                                  candidates))  # fmt: skip
    return choices, [ranked_extra(c, s, candidates, how) for c, s in zip(choices, seeds)]


def img2img(
    image: Path = typer.Argument(..., help="Source image."),
    prompt: str = typer.Argument(..., help="What the result should show."),
    strength: float = typer.Option(
        0.6, "--strength", help="In (0, 1]: near 0 keeps the image, 1 ignores it."
    ),
    n: int = typer.Option(1, "-n", help="Images to make."),
    negative: str = typer.Option("", "--negative", help="Negative prompt."),
    model: str = MODEL, seed: int = SEED, steps: int = STEPS, guidance: float = GUIDANCE,
    sampler: str = SAMPLER, output: Path = OUTPUT, candidates: int = CANDIDATES,
    rerank: str = RERANK, clip_model: str = CLIP_MODEL, lora: list[str] = LORA,
    embedding: list[str] = EMBEDDING,
) -> None:  # fmt: skip
    """Redraw an image under a prompt (SDEdit)."""
    source = open_image(image)
    writable_folder(output)
    loaded, options, editor = _editor(model, steps, guidance, sampler, keeps_source=True)
    _note_size(source, loaded)
    seeds = _seeds(seed, max(n, 1))
    prompt, text = _adapted(loaded, prompt, lora, embedding)
    choices, ranked = _best(
        lambda s: editor.img2img([source] * len(s), [text] * len(s), seeds=s,
                                 strength=strength, negative_prompt=negative, options=options),
        prompt, seeds, candidates, rerank, clip_model,
    )  # fmt: skip
    _save([c.image for c in choices], [prompt] * len(seeds), [c.seed for c in choices], loaded,
          options, output, "img2img",
          {"strength": strength, "source": image.name, "negative": negative}, ranked)  # fmt: skip


def inpaint(
    image: Path = typer.Argument(..., help="Source image."),
    mask: Path = typer.Argument(..., help="Mask PNG of the same size: white = repaint."),
    prompt: str = typer.Argument(..., help="The whole picture's caption after painting."),
    method: str = typer.Option("masked", "--method", help="masked (any model) or trained."),
    grow: int = typer.Option(0, "--grow", help="Grow the mask by this many pixels."),
    feather: float = typer.Option(0.0, "--feather", help="Soften the mask edge (pixels)."),
    jump: int = typer.Option(0, "--jump", help="RePaint: resample every JUMP steps (0 = off)."),
    resample: int = typer.Option(1, "--resample", help="RePaint: passes per jump."),
    n: int = typer.Option(1, "-n", help="Images to make."),
    model: str = MODEL, seed: int = SEED, steps: int = STEPS, guidance: float = GUIDANCE,
    sampler: str = SAMPLER, option: list[str] = OPTION, output: Path = OUTPUT,
    candidates: int = CANDIDATES, rerank: str = RERANK, clip_model: str = CLIP_MODEL,
    lora: list[str] = LORA, embedding: list[str] = EMBEDDING,
) -> None:  # fmt: skip
    """Repaint the white part of the mask; everything else stays exactly as it was. A token
    model (DALL-E, MaskGIT) masks the tokens the white part touches and draws them again."""
    from atelier.kinds.token_model import TokenModel
    from atelier.pipelines.editing import Editor
    from atelier.pipelines.token_editing import TokenEditor

    source, mask_image = open_image(image), _open_mask(mask)
    writable_folder(output)
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler}
    loaded, options = painter_options(model, "inpaint", flags, option)
    seeds = _seeds(seed, max(n, 1))
    settings: dict = {"method": method, "grow": grow, "feather": feather}
    if isinstance(loaded, TokenModel):
        _token_flags(loaded, method=method, jump=jump, resample=resample)
        editor: Editor | TokenEditor = TokenEditor(loaded.pipeline())
        _run(lambda: editor.check_image(*source.size))
        diffusion_only = {}
    else:
        editor = Editor(loaded.pipeline())
        _note_size(source, loaded)
        diffusion_only = {"method": method, "resample": (jump, resample) if jump > 0 else None}
        settings |= {"jump": jump, "resample": resample}
    prompt, text = _adapted(loaded, prompt, lora, embedding)
    choices, ranked = _best(
        lambda s: editor.inpaint([source] * len(s), [mask_image] * len(s), [text] * len(s),
                                 seeds=s, grow=grow, feather=feather, options=options,
                                 **diffusion_only),
        prompt, seeds, candidates, rerank, clip_model,
    )  # fmt: skip
    _save([c.image for c in choices], [prompt] * len(seeds), [c.seed for c in choices], loaded,
          options, output, "inpaint",
          {**settings, "source": image.name, "mask": mask.name}, ranked)  # fmt: skip


def outpaint(
    image: Path = typer.Argument(..., help="Source image."),
    prompt: str = typer.Argument(..., help="The caption of the whole extended picture."),
    left: int = typer.Option(0, "--left"), right: int = typer.Option(0, "--right"),
    top: int = typer.Option(0, "--top"), bottom: int = typer.Option(0, "--bottom"),
    feather: float = typer.Option(0.0, "--feather", help="Soften the seam (pixels)."),
    model: str = MODEL, seed: int = SEED, steps: int = STEPS, guidance: float = GUIDANCE,
    sampler: str = SAMPLER, option: list[str] = OPTION, output: Path = OUTPUT,
    candidates: int = CANDIDATES, rerank: str = RERANK, clip_model: str = CLIP_MODEL,
    lora: list[str] = LORA, embedding: list[str] = EMBEDDING,
) -> None:  # fmt: skip
    """Extend the canvas by pixels per side and paint the new area; the original is kept. A
    token model makes its own size only: the padded canvas must be that size."""
    from atelier.kinds.token_model import TokenModel
    from atelier.pipelines.editing import Editor
    from atelier.pipelines.token_editing import TokenEditor

    source = open_image(image)
    (seed,) = _seeds(seed, 1)
    pads = {"left": left, "right": right, "top": top, "bottom": bottom}
    try:
        check_pixels(source.width + left + right, source.height + top + bottom,
                     what="the outpainted canvas")  # fmt: skip
    except ValueError as err:
        raise fail(str(err)) from None
    writable_folder(output)
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler}
    loaded, options = painter_options(model, "outpaint", flags, option)
    if isinstance(loaded, TokenModel):
        editor: Editor | TokenEditor = TokenEditor(loaded.pipeline())
        _run(lambda: editor.check_outpaint(source.width, source.height, **pads))
    else:
        editor = Editor(loaded.pipeline())
    prompt, text = _adapted(loaded, prompt, lora, embedding)
    choices, ranked = _best(
        lambda s: [editor.outpaint(source, text, seed=x, feather=feather, options=options,
                                   **pads) for x in s],
        prompt, [seed], candidates, rerank, clip_model,
    )  # fmt: skip
    _save([choices[0].image], [prompt], [choices[0].seed], loaded, options, output, "outpaint",
          {**pads, "source": image.name}, ranked)  # fmt: skip


def variations(
    image: Path = typer.Argument(..., help="Source image."),
    n: int = typer.Option(4, "-n", help="How many variations."),
    prompt: str = typer.Option("", "--prompt", help="Optional caption to keep them on topic."),
    strength: float = typer.Option(
        None, "--strength", help="Diffusion models: how far each may wander, (0, 1] (0.6)."
    ),
    toward: str = typer.Option(
        None, "--toward", help="unCLIP: move the image's CLIP embedding toward this caption..."
    ),
    away: str = typer.Option(None, "--away", help="...and away from this one (a text diff)."),
    amount: float = typer.Option(0.5, "--amount", help="unCLIP text diff: how far, in [0, 1]."),
    model: str = MODEL, seed: int = SEED, steps: int = STEPS, guidance: float = GUIDANCE,
    sampler: str = SAMPLER, output: Path = OUTPUT, lora: list[str] = LORA,
    embedding: list[str] = EMBEDDING,
) -> None:  # fmt: skip
    """The same content with new details: a diffusion model encodes, partly noises and
    resamples the image; an unCLIP model decodes its CLIP embedding again (DALL-E 2)."""
    from atelier.pipelines.unclip import TextDiff

    source = open_image(image)
    writable_folder(output)
    seeds = _seeds(seed, max(n, 1))
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler}
    if describe_generator(model).kind == "unclip":
        if strength is not None:
            raise fail(f"{model} is an unCLIP model, which decodes the image's CLIP embedding "
                       "again: --strength belongs to a diffusion model's img2img variations; "
                       "leave it out")  # fmt: skip
        if lora or embedding:
            raise fail(f"{model} is an unCLIP model: --lora and --embedding adapt a diffusion "
                       "model's UNet and text encoder; give a diffusion --model")  # fmt: skip
        if (toward is None) != (away is None):
            raise fail("a text diff needs both --toward CAPTION and --away CAPTION")
        loaded = load_generator(model)
        options = options_for(loaded.name, loaded.defaults, flags)
        diff = TextDiff(toward, away, amount) if toward is not None else None
        images = _run(lambda: loaded.variations(source, seeds=seeds, prompt=prompt,
                                                options=options, diff=diff))  # fmt: skip
        moved = {"toward": toward, "away": away, "amount": amount} if diff else {}
        _save(images, [prompt] * len(images), seeds, loaded, options, output, "variations",
              {"source": image.name, "embedding": "clip", **moved})  # fmt: skip
        return
    if toward is not None or away is not None:
        raise fail(f"--toward and --away move an unCLIP model's CLIP embedding; {model} is a "
                   "diffusion model: give --prompt, or an unCLIP --model")  # fmt: skip
    strength = 0.6 if strength is None else strength
    loaded, options, editor = _editor(model, steps, guidance, sampler, keeps_source=True)
    _note_size(source, loaded)
    prompt, text = _adapted(loaded, prompt, lora, embedding)
    images = _run(lambda: editor.variations(source, n, seed=seeds[0], prompt=text,
                                            strength=strength, options=options))  # fmt: skip
    _save(images, [prompt] * len(images), seeds, loaded, options, output, "variations",
          {"strength": strength, "source": image.name})  # fmt: skip


def upscale(
    image: Path = typer.Argument(..., help="Low-resolution image (the upscaler's input size)."),
    model: str = typer.Option("shapes-sr-32-64", "--model", help="Upscaler name or folder."),
    seed: int = SEED, steps: int = STEPS, sampler: str = SAMPLER, output: Path = OUTPUT,
) -> None:  # fmt: skip
    """Upscale with a super-resolution diffusion model (SR3 / Imagen style)."""
    from atelier.kinds.upscaler import load_upscaler
    from atelier.pipelines.metadata import GenerationParams, save_numbered_png

    source = open_image(image)
    writable_folder(output)
    try:
        upscaler = load_upscaler(model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    c = upscaler.config
    (seed,) = _seeds(seed, 1)
    options = options_for(c.name, c.defaults, {"steps": steps, "sampler": sampler})
    result = _run(lambda: upscaler([source], seeds=[seed], options=options))[0]
    params = GenerationParams.of(
        result, prompt="", seed=seed, options=options, model=c.name, model_hash="-",
        mode="upscale",
        extra={"source": image.name, "from": c.low, "to": c.high, "aug_level": c.inference_aug},
    )  # fmt: skip
    typer.echo(str(save_numbered_png(result, output, f"upscale-{seed}", params)))
