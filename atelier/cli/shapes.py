"""``atelier shapes …``: render, judge and export the shapes world, and measure the judge."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from atelier.atomic import write_atomic
from atelier.cli.errors import fail, open_image
from atelier.shapes.parse import PromptError, parse_prompt
from atelier.shapes.world import SIZES_AVAILABLE, SceneSpec

app = typer.Typer(
    help="The shapes world: render prompts, judge images, export datasets.", no_args_is_help=True
)


def _spec(prompt: str) -> SceneSpec:
    try:
        return parse_prompt(prompt)
    except PromptError as err:
        raise fail(str(err)) from None


def _check_size(size: int) -> None:
    if size not in SIZES_AVAILABLE:
        raise fail(f"--size must be one of {', '.join(map(str, SIZES_AVAILABLE))}, not {size}")


@app.command()
def render(
    prompt: str = typer.Argument(
        ..., help='What to draw, e.g. "a red circle above a blue square".'
    ),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write."),
    size: int = typer.Option(64, "--size", help="Canvas side in pixels: 32, 64 or 128."),
    seed: int = typer.Option(0, "--seed", help="Seed for unstated positions, sizes and jitter."),
) -> None:
    """Render a prompt exactly, as the shapes world defines it."""
    import numpy as np
    from PIL import Image

    from atelier.shapes.render import render as render_scene
    from atelier.shapes.scene import realize

    _check_size(size)
    spec = _spec(prompt)
    try:
        scene = realize(spec, np.random.default_rng(seed))
    except ValueError as err:
        raise fail(str(err)) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_scene(scene, size)).save(output)
    typer.echo(str(output))


@app.command()
def judge(
    image: Path = typer.Argument(..., help="Image to score (any size, any mode)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The prompt it should show."),
) -> None:
    """Find the objects in an image and score it strictly against a prompt (exit 1 on fail)."""
    from atelier.shapes.judge import judge as judge_image

    spec = _spec(prompt)
    verdict = judge_image(open_image(image), spec)
    typer.echo(f"found {len(verdict.objects)} object(s):")
    for obj in verdict.objects:
        typer.echo(f"  {obj.describe()}  (side {obj.side:.2f} S)")
    if verdict.passed:
        typer.echo("PASS")
        return
    typer.echo("FAIL: " + "; ".join(verdict.reasons))
    raise typer.Exit(1)


@app.command()
def dataset(
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder to write (imagefolder layout)."
    ),
    n: int = typer.Option(10000, "--n", help="Number of images."),
    size: int = typer.Option(64, "--size", help="Canvas side in pixels: 32, 64 or 128."),
    seed: int = typer.Option(0, "--seed", help="Seed; image i depends only on (seed, i)."),
    split: str = typer.Option(
        "train", "--split", help="train (no held-out pairs) or any (all 18 pairs)."
    ),
) -> None:
    """Write N captioned scenes as PNGs plus metadata.jsonl (file_name, text, spec)."""
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from atelier.shapes.caption import caption
    from atelier.shapes.render import render as render_scene
    from atelier.shapes.scene import sample_scene

    _check_size(size)
    if split not in ("train", "any"):
        raise fail(f"--split must be 'train' or 'any', not {split!r}")
    if n < 1:
        raise fail(f"--n must be at least 1, not {n}")
    if (output / "metadata.jsonl").exists():
        raise fail(f"{output} already holds a dataset (metadata.jsonl); choose a new folder")
    images = output / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    width = len(str(n - 1))
    for i in tqdm(range(n), desc="rendering", unit="img"):
        rng = np.random.default_rng([seed, i])
        scene = sample_scene(rng, split=split)
        name = f"images/{i:0{width}d}.png"
        Image.fromarray(render_scene(scene, size)).save(output / name)
        lines.append(
            json.dumps(
                {"file_name": name, "text": caption(scene, rng), "spec": scene.spec().to_dict()}
            )
        )
    # Written last and atomically: a folder with metadata.jsonl is a complete dataset.
    write_atomic(output / "metadata.jsonl", "\n".join(lines) + "\n")
    typer.echo(f"wrote {n} images and {output / 'metadata.jsonl'}")


@app.command()
def concept(
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder to write (imagefolder layout)."
    ),
    token: str = typer.Option("sks", "--token", help="The rare word naming the concept."),
    n: int = typer.Option(16, "--n", help="Number of images, 5 to 20."),
    size: int = typer.Option(64, "--size", help="Canvas side in pixels: 32, 64 or 128."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write the concept set (a large cross the world lacks, named by TOKEN) as PNGs plus
    metadata.jsonl, for `atelier train lora|dreambooth|textual-inversion --data`; its suite
    (colours and cells the images never show) is what bench/personalize.py judges."""
    from PIL import Image

    from atelier.shapes.concept import render_concept, training_scenes

    _check_size(size)
    try:
        scenes = training_scenes(n, token=token, seed=seed)
    except ValueError as err:
        raise fail(str(err)) from None
    if (output / "metadata.jsonl").exists():
        raise fail(f"{output} already holds a dataset (metadata.jsonl); choose a new folder")
    (output / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (scene, text) in enumerate(scenes):
        name = f"images/{i:02d}.png"
        Image.fromarray(render_concept(scene, size)).save(output / name)
        objects = [
            {"color": o.color, "shape": o.shape, "cell": list(o.cell)} for o in scene.objects
        ]
        lines.append(json.dumps({"file_name": name, "text": text, "objects": objects}))
    write_atomic(output / "metadata.jsonl", "\n".join(lines) + "\n")
    typer.echo(f"wrote {n} images and {output / 'metadata.jsonl'}")


@app.command()
def bench(
    output: Path = typer.Option(None, "-o", "--output", help="Write the regenerated suite here."),
) -> None:
    """Regenerate shapes-bench and check it against the committed suite."""
    from atelier.shapes.bench import build_suite, load_suite, write_suite

    suite = build_suite()
    if output is not None:
        write_suite(output, suite)
        typer.echo(str(output))
    same = [bp.to_json() for bp in suite] == [bp.to_json() for bp in load_suite()]
    typer.echo(f"{len(suite)} prompts; identical to the committed suite: {same}")
    if not same:
        raise typer.Exit(1)


@app.command()
def floor(
    sizes: str = typer.Option("64,128", "--sizes", help="Comma-separated canvas sizes."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Measure the judge's floor: pass rate on fresh true renders of every suite prompt."""
    from atelier.shapes.bench import load_suite
    from atelier.shapes.floor import format_floor, measure_floor

    try:
        size_list = [int(s) for s in sizes.split(",")]
    except ValueError:
        raise fail(f"--sizes must be comma-separated integers, not {sizes!r}") from None
    for s in size_list:
        _check_size(s)
    rows = measure_floor(load_suite(), sizes=size_list, seed=seed, progress=True)
    typer.echo(format_floor(rows))
    for row in rows:
        for prompt, reasons in row.failures[:5]:
            typer.echo(f"  {row.size}px {row.condition}: {prompt!r}: {'; '.join(reasons)}")
