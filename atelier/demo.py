"""``make demo``: generate a seen and a held-out shapes-bench prompt per category; judge them.

With the shipped default model (``atelier/weights/shapes-ldm-minilm``) the images are generated from
text; each is judged against its prompt, and all are tiled into ``out/demo/grid.png`` (each tile
under its prompt and verdict, framed green for a pass and red for a fail) beside one PNG per
prompt (each carrying its generation parameters). Without a trained model, the demo
renders the prompts exactly instead, so the world and its judge can still be seen.

When the shipped models of the real sets are present, the grid also shows them: the digits
model draws each digit (read back by the shipped digit judge, ``mnist-classifier``), and the
emoji model draws a few emoji names it trained on and a few it never saw.

Unlike ``atelier generate``, which never overwrites an image, the demo rewrites its own fixed
files on every run (``NN-category-split.png`` and ``grid.png``): the folder shows the latest run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.eval.grid import Tile, labelled_grid
from atelier.kinds.default import DEFAULT_MODEL
from atelier.kinds.folder import resolve
from atelier.kinds.registry import load_text_to_image
from atelier.pipelines.metadata import GenerationParams, save_png
from atelier.shapes.bench import BenchPrompt, first_per_category, load_suite
from atelier.shapes.floor import degrade
from atelier.shapes.judge import judge
from atelier.shapes.render import render
from atelier.shapes.scene import realize


def demo_prompts() -> list[BenchPrompt]:
    suite = load_suite()
    seen, held_out = first_per_category(suite, "seen"), first_per_category(suite, "held_out")
    return [bp for pair in zip(seen, held_out) for bp in pair]


def generated(picks: list[BenchPrompt], model: str, out: Path, seed: int) -> list[np.ndarray]:
    loaded = load_text_to_image(model)
    options = loaded.defaults
    seeds = [seed + k for k in range(len(picks))]
    images = loaded([bp.prompt for bp in picks], seeds=seeds, options=options)
    for k, (bp, s, image) in enumerate(zip(picks, seeds, images)):
        params = GenerationParams.of(
            image, prompt=bp.prompt, seed=s, options=options, model=loaded.name,
            model_hash=loaded.model_hash,
        )  # fmt: skip
        save_png(image, out / f"{k:02d}-{bp.category}-{bp.split}.png", params, replace=True)
    return [np.asarray(im) for im in images]


def rendered(picks: list[BenchPrompt], out: Path, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    tiles = [degrade(render(realize(bp.spec, rng), 64), rng) for bp in picks]
    for k, (bp, px) in enumerate(zip(picks, tiles)):
        Image.fromarray(px).save(out / f"{k:02d}-{bp.category}-{bp.split}.png")
    return tiles


# The real sets' shipped models and what the demo asks of them.
DIGIT_MODEL, DIGIT_JUDGE, EMOJI_MODEL = "mnist-pixel", "mnist-classifier", "emoji-ldm"


def _installed(model: str) -> bool:
    try:
        resolve(model)
    except FileNotFoundError:
        return False
    return True


def _draw(model: str, prompts: list[str], out: Path, stem: str, seed: int) -> list[Image.Image]:
    """``prompts`` drawn by ``model`` at its defaults, seeds from ``seed``, saved as PNGs."""
    loaded = load_text_to_image(model)
    seeds = [seed + k for k in range(len(prompts))]
    images = loaded(prompts, seeds=seeds, options=loaded.defaults)
    for k, (prompt, s, image) in enumerate(zip(prompts, seeds, images)):
        params = GenerationParams.of(image, prompt=prompt, seed=s, options=loaded.defaults,
                                     model=loaded.name, model_hash=loaded.model_hash)  # fmt: skip
        save_png(image, out / f"{stem}-{k:02d}.png", params, replace=True)
    return images


def digit_tiles(out: Path, seed: int) -> list[Tile]:
    """Every digit, in a seen phrasing for even digits and a held-out one for odd, drawn by the
    digits model and read back by the digit judge (empty without the digits model)."""
    if not _installed(DIGIT_MODEL):
        return []
    from atelier.eval.digits import digit_prompts, read_digits_of
    from atelier.eval.real_sets import tensors
    from atelier.kinds.registry import load_model

    picks = [p for p in digit_prompts()
             if p.id == f"{p.digit}-{'seen' if p.digit % 2 == 0 else 'held_out'}-0"]  # fmt: skip
    images = _draw(DIGIT_MODEL, [p.prompt for p in picks], out, "digits", seed)
    read = read_digits_of(tensors(images), classifier=load_model(DIGIT_JUDGE)).tolist()
    print(f"\n{'digit':<6} {'split':<9} {'verdict':<7} prompt "
          f"({DIGIT_MODEL}, read by {DIGIT_JUDGE})")  # fmt: skip
    tiles = []
    for p, image, r in zip(picks, images, read):
        mark = "PASS" if r == p.digit else "FAIL"
        print(f"{p.digit:<6} {p.split:<9} {mark:<7} {p.prompt} (read as {r})")
        tiles.append(Tile(np.asarray(image), (p.prompt, f"{mark} · read as {r}"), r == p.digit))
    return tiles


def emoji_tiles(out: Path, seed: int) -> list[Tile]:
    """A few emoji names the emoji model trained on and a few it never saw (empty without it)."""
    if not _installed(EMOJI_MODEL):
        return []
    from atelier.eval.examples import emoji_examples, split_note

    names = emoji_examples()
    images = _draw(EMOJI_MODEL, [name for name, _ in names], out, "emoji", seed)
    print(f"\nemoji ({EMOJI_MODEL}): " + ", ".join(f"{n} ({s})" for n, s in names))
    return [Tile(np.asarray(im), (name, split_note(split))) for (name, split), im
            in zip(names, images)]  # fmt: skip


def stacked(parts: list[Image.Image]) -> Image.Image:
    """Grids one under another on white, left-aligned."""
    canvas = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        canvas.paste(part, (0, y))
        y += part.height
    return canvas


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=Path("out/demo"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    picks = demo_prompts()
    began = time.perf_counter()
    try:
        resolve(args.model)
        tiles, how = (
            generated(picks, args.model, args.output, args.seed),
            f"generated by {args.model}",
        )
    except FileNotFoundError:
        tiles, how = rendered(picks, args.output, args.seed), "rendered exactly (no trained model)"
    print(f"{'category':<18} {'split':<9} {'verdict':<7} prompt")
    labelled = []
    for bp, px in zip(picks, tiles):
        passed = judge(px, bp.spec).passed
        mark = "PASS" if passed else "FAIL"
        print(f"{bp.category:<18} {bp.split:<9} {mark:<7} {bp.prompt}")
        split = bp.split.replace("_", "-")
        labelled.append(Tile(px, (bp.prompt, f"{mark} · {bp.category}, {split}"), passed))
    grid = args.output / "grid.png"
    parts = [labelled_grid(labelled, cols=7, title=f"make demo: {how}, seeds from {args.seed}")]
    if digits := digit_tiles(args.output, args.seed):
        title = f"real digits: {DIGIT_MODEL}, read back by {DIGIT_JUDGE}"
        parts.append(labelled_grid(digits, cols=10, title=title))
    if emoji := emoji_tiles(args.output, args.seed):
        title = f"real emoji: {EMOJI_MODEL}, names seen in training and held out"
        parts.append(labelled_grid(emoji, cols=5, title=title))
    real = len(digits) + len(emoji)
    stacked(parts).save(grid)
    seconds = time.perf_counter() - began
    extra = f" and {real} real-picture prompts" if real else ""
    print(f"\n{len(picks)} prompts {how}{extra} in {seconds:.1f} s; grid: {grid}")


if __name__ == "__main__":
    main()
