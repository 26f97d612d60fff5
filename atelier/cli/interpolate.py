"""``atelier interpolate PROMPT [--to PROMPT] [--seed A] [--to-seed B] --frames N``: the path
between two images of one model, as a GIF and a strip PNG.

A GAN moves its noise z along the arc between the two seeds' (slerp) and its text embedding
along the line between the two prompts'; a diffusion model does the same with its initial
noise and text (``pipelines/interpolate.py``). Token models draw discrete codes, with no path
between two images, and are refused.

``atelier interpolate --image A.png --to-image B.png --model UNCLIP``: an unCLIP model's path
between two given images (DALL-E 2, section 3.2): their CLIP image embeddings slerped, every
frame decoded at ``--seed`` (``pipelines/unclip.py``).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from atelier.atomic import write_new
from atelier.budget import check_images, check_prompt, check_seed
from atelier.cli.common import (
    DIFFUSION_PANEL,
    GUIDANCE,
    GUIDANCE_RESCALE,
    OPTION,
    STEPS,
    describe_generator,
    generator_options,
    load_generator,
    options_for,
)
from atelier.cli.errors import fail, open_image, writable_folder
from atelier.kinds.default import DEFAULT_MODEL

if TYPE_CHECKING:
    from PIL import Image


def _encoded(frames: list[Image.Image], duration: int, record: dict) -> tuple[bytes, bytes]:
    """The GIF (played forth and looped) and the strip PNG (frames left to right, carrying
    ``record`` as JSON) of ``frames``."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:],
                   duration=duration, loop=0)  # fmt: skip
    strip = Image.fromarray(np.concatenate([np.asarray(f) for f in frames], axis=1))
    info = PngImagePlugin.PngInfo()
    info.add_text("atelier-interpolate", json.dumps(record, sort_keys=True))
    png = io.BytesIO()
    strip.save(png, format="PNG", pnginfo=info)
    return gif.getvalue(), png.getvalue()


def _write(folder: Path, gif: bytes, png: bytes) -> tuple[Path, Path]:
    """``NNNNN-interpolate.gif`` and ``NNNNN-interpolate-strip.png``, NNNNN above every
    numbered PNG in ``folder``; nothing is overwritten (a taken number moves to the next)."""
    from atelier.pipelines.metadata import next_number

    number = next_number(folder)
    while True:
        stem = folder / f"{number:05d}-interpolate"
        try:
            strip = write_new(stem.with_name(stem.name + "-strip.png"), png)
        except FileExistsError:
            number += 1
            continue
        try:
            return write_new(stem.with_suffix(".gif"), gif), strip
        except FileExistsError:
            strip.unlink()
            number += 1


def _check_frames(frames: int, duration: int) -> None:
    if frames < 2 or duration < 1:
        raise fail("--frames must be at least 2 and --duration at least 1")
    try:
        check_images(frames)
    except ValueError as err:
        raise fail(str(err)) from None


def _interpolate_images(
    first: Path | None, last: Path | None, *, prompt: str | None, to: str | None, seed: int,
    to_seed: int | None, frames: int, duration: int, model: str, flags: dict, option: list[str],
    output: Path,
) -> None:  # fmt: skip
    """The ``--image A --to-image B`` path: an unCLIP model's frames between two images' CLIP
    embeddings, each decoded at ``seed``; written and printed as the prompt path's are."""
    if first is None or last is None:
        given, missing = ("--image", "--to-image B.png") if last is None else (
            "--to-image", "--image A.png")  # fmt: skip
        raise fail(f"{given} needs {missing}: the path runs between two images")
    if prompt is not None or to is not None:
        raise fail("--image and --to-image interpolate between two images' CLIP embeddings, "
                   "with no prompt on the path: leave out PROMPT and --to (or interpolate two "
                   "prompts without --image)")  # fmt: skip
    if to_seed is not None:
        raise fail("every frame of an image interpolation is decoded at --seed, so that only "
                   "the embedding moves: leave out --to-seed")  # fmt: skip
    _check_frames(frames, duration)
    try:
        check_seed(seed)
    except ValueError as err:
        raise fail(str(err)) from None
    listed = describe_generator(model)
    if listed.kind != "unclip":
        raise fail(f"{listed.name} is a {listed.facts.title} model: --image interpolates in CLIP "
                   "image-embedding space, which only an unCLIP model (kind unclip) decodes "
                   "from; give --model shapes-unclip or another unCLIP model")  # fmt: skip
    options = options_for(listed.name, listed.facts.defaults, flags, option)
    images = (open_image(first, "first image"), open_image(last, "last image"))
    writable_folder(output)
    loaded = load_generator(model)
    try:
        drawn = loaded.interpolate_images(images, seed=seed, frames=frames, options=options)
    except ValueError as err:
        raise fail(str(err)) from None
    record = {"model": loaded.name, "model_hash": loaded.model_hash,
              "images": [first.name, last.name], "seed": seed, "frames": frames,
              "embedding": "clip", "options": asdict(options)}  # fmt: skip
    gif, strip = _write(output, *_encoded(drawn, duration, record))
    typer.echo(str(gif))
    typer.echo(str(strip))


def interpolate(
    prompt: str = typer.Argument(None, help="The first image's prompt."),
    to: str = typer.Option(None, "--to", help="The last image's prompt (default: PROMPT)."),
    seed: int = typer.Option(0, "--seed", help="The first image's seed (--image: every frame's)."),
    to_seed: int = typer.Option(None, "--to-seed", help="The last image's seed (default: --seed)."),
    image: Path = typer.Option(
        None, "--image", help="unCLIP: the first image; the path runs in CLIP space (no PROMPT)."
    ),
    to_image: Path = typer.Option(None, "--to-image", help="unCLIP: the last image."),
    frames: int = typer.Option(8, "--frames", help="Images along the path, both ends included."),
    duration: int = typer.Option(120, "--duration", help="Milliseconds per GIF frame."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Model name or folder."),
    steps: int = STEPS,
    guidance: float = GUIDANCE,
    guidance_rescale: float = GUIDANCE_RESCALE,
    sampler: str = typer.Option(
        None, "--sampler", help="Sampler (default: the model's).", rich_help_panel=DIFFUSION_PANEL
    ),  # fmt: skip
    option: list[str] = OPTION,
    output: Path = typer.Option(Path("out/interpolate"), "-o", "--output", help="Output folder."),
) -> None:
    """Draw the path between two seeds or two prompts (or both), or with an unCLIP model
    between two images, as a GIF and a strip PNG; prints both paths."""
    from atelier.kinds.base import Interpolates
    from atelier.pipelines.composable import split_and

    flags = {"steps": steps, "guidance": guidance, "sampler": sampler,
             "guidance_rescale": guidance_rescale}  # fmt: skip
    if image is not None or to_image is not None:
        _interpolate_images(image, to_image, prompt=prompt, to=to, seed=seed, to_seed=to_seed,
                            frames=frames, duration=duration, model=model, flags=flags,
                            option=option, output=output)  # fmt: skip
        return
    if prompt is None:
        raise fail("give PROMPT (with --to PROMPT, --to-seed SEED or both), or with an unCLIP "
                   "model --image A.png --to-image B.png")  # fmt: skip
    last_prompt = prompt if to is None else to
    last_seed = seed if to_seed is None else to_seed
    if (last_prompt, last_seed) == (prompt, seed):
        raise fail("the two ends are the same image: give --to PROMPT, --to-seed SEED or both")
    _check_frames(frames, duration)
    try:
        for text in (prompt, last_prompt):
            check_prompt(text)
            if len(split_and(text)) > 1:
                raise ValueError(f"interpolate takes plain prompts; {text!r} is composed with "
                                 "AND, which has no one embedding to move along")  # fmt: skip
        check_seed(seed)
        check_seed(last_seed)
    except ValueError as err:
        raise fail(str(err)) from None
    listed, options, loaded = generator_options(model, flags, option)
    if listed.kind == "unclip":
        raise fail(f"{listed.name} is an unCLIP model, which interpolates between two "
                   "images in CLIP space: give --image A.png --to-image B.png instead of "
                   "prompts")  # fmt: skip
    writable_folder(output)
    loaded = loaded or load_generator(model)
    if not isinstance(loaded, Interpolates):
        raise fail(f"{listed.name} is a {listed.facts.title} model, which cannot interpolate: "
                   "its images are discrete codes, with no path between two; use a GAN or a "
                   "diffusion model")  # fmt: skip
    try:
        images = loaded.interpolate((prompt, last_prompt), seeds=(seed, last_seed),
                                    frames=frames, options=options)  # fmt: skip
    except ValueError as err:
        raise fail(str(err)) from None
    record = {"model": loaded.name, "model_hash": loaded.model_hash,
              "prompts": [prompt, last_prompt], "seeds": [seed, last_seed], "frames": frames,
              "options": asdict(options)}  # fmt: skip
    gif, strip = _write(output, *_encoded(images, duration, record))
    typer.echo(str(gif))
    typer.echo(str(strip))
