"""``make demo``: render and judge a handful of shapes-bench prompts, and save them as a grid.

Until a trained text-to-image model ships, the demo shows the world atelier learns from and the
judge that will score its generations: each prompt is rendered exactly, judged, and tiled into
``out/demo/grid.png`` next to one PNG per prompt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from atelier.shapes.bench import load_suite
from atelier.shapes.floor import degrade
from atelier.shapes.judge import judge
from atelier.shapes.render import render
from atelier.shapes.scene import realize


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=Path("out/demo"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    suite = load_suite()
    picks = [
        next(bp for bp in suite if bp.category == c and bp.split == s)
        for c in dict.fromkeys(bp.category for bp in suite)
        for s in ("seen", "held_out")
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    tiles = []
    print(f"{'category':<18} {'split':<9} {'verdict':<7} prompt")
    for k, bp in enumerate(picks):
        pixels = degrade(render(realize(bp.spec, rng), args.size), rng)
        verdict = judge(pixels, bp.spec)
        path = args.output / f"{k:02d}-{bp.category}-{bp.split}.png"
        Image.fromarray(pixels).save(path)
        tiles.append(pixels)
        mark = "PASS" if verdict.passed else "FAIL"
        print(f"{bp.category:<18} {bp.split:<9} {mark:<7} {bp.prompt}")
    cols = 7
    rows = [
        np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(len(tiles) // cols)
    ]
    grid = args.output / "grid.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(grid)
    print(f"\n{len(picks)} prompts rendered (mild blur and noise) and judged; grid: {grid}")


if __name__ == "__main__":
    main()
