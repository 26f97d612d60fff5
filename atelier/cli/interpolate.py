"""``atelier interpolate PROMPT [--to PROMPT] [--seed A] [--to-seed B] --frames N``: the path
between two images of one model, as a GIF and a strip PNG.

A GAN moves its noise z along the arc between the two seeds' (slerp) and its text embedding
along the line between the two prompts'; a diffusion model does the same with its initial
noise and text (``pipelines/interpolate.py``). Token models draw discrete codes, with no path
between two images, and are refused.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import typer
from PIL import Image, PngImagePlugin

from atelier.atomic import write_new
from atelier.budget import check_images, check_prompt, check_seed
from atelier.cli.common import (
    DIFFUSION_PANEL,
    GUIDANCE,
    GUIDANCE_RESCALE,
    OPTION,
    STEPS,
    generator_options,
    load_generator,
)
from atelier.cli.errors import fail, writable_folder
from atelier.kinds.base import Interpolates
from atelier.kinds.folder import DEFAULT_MODEL
from atelier.pipelines.composable import split_and
from atelier.pipelines.metadata import next_number


def _encoded(frames: list[Image.Image], duration: int, record: dict) -> tuple[bytes, bytes]:
    """The GIF (played forth and looped) and the strip PNG (frames left to right, carrying
    ``record`` as JSON) of ``frames``."""
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


def interpolate(
    prompt: str = typer.Argument(..., help="The first image's prompt."),
    to: str = typer.Option(None, "--to", help="The last image's prompt (default: PROMPT)."),
    seed: int = typer.Option(0, "--seed", help="The first image's seed."),
    to_seed: int = typer.Option(None, "--to-seed", help="The last image's seed (default: --seed)."),
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
    """Draw the path between two seeds or two prompts (or both) as a GIF and a strip PNG;
    prints both paths."""
    last_prompt = prompt if to is None else to
    last_seed = seed if to_seed is None else to_seed
    if (last_prompt, last_seed) == (prompt, seed):
        raise fail("the two ends are the same image: give --to PROMPT, --to-seed SEED or both")
    if frames < 2 or duration < 1:
        raise fail("--frames must be at least 2 and --duration at least 1")
    try:
        for text in (prompt, last_prompt):
            check_prompt(text)
            if len(split_and(text)) > 1:
                raise ValueError(f"interpolate takes plain prompts; {text!r} is composed with "
                                 "AND, which has no one embedding to move along")  # fmt: skip
        check_seed(seed)
        check_seed(last_seed)
        check_images(frames)
    except ValueError as err:
        raise fail(str(err)) from None
    flags = {"steps": steps, "guidance": guidance, "sampler": sampler,
             "guidance_rescale": guidance_rescale}  # fmt: skip
    listed, options, loaded = generator_options(model, flags, option)
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
