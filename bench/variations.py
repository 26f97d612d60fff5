"""Variations benchmark (DALL-E 2): does decoding an image's own CLIP embedding keep what it shows?

    .venv/bin/python bench/variations.py [--model shapes-unclip] [--n 100] [--quick]

``n`` fresh renders of the shapes world (seeds no training set uses, the training split's
colour-shape pairs), each at the model's own resolution, and one variation of each (seed k, the
model's defaults), judged by the project's judge:

- kept: the variation shows the same multiset of (colour, shape) as the source (its spec);
  the aim of the unCLIP issue is at least 0.70;
- differs: of the kept ones, the share whose layout or detail changed: an object in another
  grid cell or of another size than the source's, or a mean absolute pixel change of at least
  ``--detail`` (in 1/255; the judge's own renders of one spec differ by about that much).

Each figure is a rate with a 95% bootstrap interval over sources. With ``--examples PATH`` it
also writes a labelled grid of the first sources beside their variations.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.eval.grid import Tile, labelled_grid  # noqa: E402
from atelier.eval.shapes_bench import bootstrap  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.shapes.judge import detect  # noqa: E402
from atelier.shapes.render import render  # noqa: E402
from atelier.shapes.scene import sample_scene  # noqa: E402
from atelier.shapes.world import SceneSpec  # noqa: E402

SEED = 424_242


def objects_of(spec: SceneSpec) -> Counter:
    return Counter((o.color, o.shape) for o in spec.objects)


def layout_of(found) -> Counter:
    return Counter((o.color, o.shape, o.cell, o.size) for o in found)


def rate(passes: list[bool]) -> str:
    if not passes:
        return "- (n=0)"
    a = bootstrap([[p] for p in passes])
    return f"{a.accuracy:.3f} [{a.low:.3f}, {a.high:.3f}] (n={len(passes)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-unclip")
    parser.add_argument("--n", type=int, default=100, help="fresh sources (default 100)")
    parser.add_argument("--quick", action="store_true", help="12 sources")
    parser.add_argument("--detail", type=float, default=8.0,
                        help="mean absolute change (1/255) that counts as new detail")  # fmt: skip
    parser.add_argument("--examples", type=Path, default=None, help="write a grid here")
    args = parser.parse_args()
    n = 12 if args.quick else args.n
    if n < 1:
        parser.error("--n must be at least 1")
    model = load_model(args.model)
    if not hasattr(model, "variations"):
        parser.error(f"{args.model} is not an unCLIP model (it has no variations)")
    size = model.resolution
    rng = np.random.default_rng(SEED)
    sources = [sample_scene(rng, split="train") for _ in range(n)]
    d = model.defaults
    print(f"# Variations: {args.model}, {n} fresh renders at {size} px, one variation each "
          f"(decoder {d.sampler} {d.steps} steps, CFG {d.guidance})")  # fmt: skip
    kept, differs, source_read = [], [], []
    moved = changed = 0
    tiles: list[Tile] = []
    began = time.perf_counter()
    for k, scene in enumerate(tqdm(sources, desc="variations", unit="source")):
        spec = scene.spec()
        image = Image.fromarray(render(scene, size))
        source_found = detect(np.asarray(image))
        source_read.append(Counter((o.color, o.shape) for o in source_found) == objects_of(spec))
        out = model.variations(image, seeds=[k])[0]
        found = detect(np.asarray(out))
        same = Counter((o.color, o.shape) for o in found) == objects_of(spec)
        kept.append(same)
        if same:
            new_layout = layout_of(found) != layout_of(source_found)
            delta = float(np.abs(np.asarray(out, float) - np.asarray(image, float)).mean())
            differs.append(new_layout or delta >= args.detail)
            moved += new_layout
            changed += delta >= args.detail
        if args.examples is not None and len(tiles) < 16:
            verdict = "kept" if same else "lost"
            tiles += [Tile(np.asarray(image), (f"source {k}",)),
                      Tile(np.asarray(out), (f"variation: {verdict}",), same)]  # fmt: skip
    seconds = (time.perf_counter() - began) / n
    print("| measure | rate |")
    print("|---|---|")
    print(f"| the judge reads the source's own objects (sanity) | {rate(source_read)} |")
    print(f"| variation keeps the source's colour-shape multiset | {rate(kept)} |")
    print(f"| of those, differs in layout or detail | {rate(differs)} |")
    print(f"\nof the {sum(kept)} kept: {moved} with an object in another cell or size, "
          f"{changed} with a mean change of at least {args.detail:g}/255; "
          f"{seconds:.2f} s a variation")  # fmt: skip
    if args.examples is not None:
        labelled_grid(tiles, cols=8, title=f"{args.model}: sources and their variations").save(
            args.examples
        )
        print(f"grid: {args.examples}")


if __name__ == "__main__":
    main()
