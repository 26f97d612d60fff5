"""Choosing an emoji model's sampling options on names it was trained on, never held-out ones.

    .venv/bin/python bench/emoji_sampling.py --model emoji-dalle \
        --grid temperature=1,0.9 --grid top_k=0,64 [--seeds 0,1] [--json FILE]

Each cell of the grid (the product of the ``--grid NAME=V1,V2`` axes, options of the model's
kind as ``atelier inspect`` lists them) draws the emoji suite's 64 seen captions
(``eval/emoji.py: emoji_prompts``, spread over the training half) at each seed, and emoji-clip
reads them: R-precision of the name among the 64 seen names (chance 1/64) and the mean CLIP score
with the caption. The held-out names are not drawn, so a default chosen here is not fitted to
what ``atelier eval`` and the arena measure. Prints a Markdown table, best R-precision first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.data.real import real_folder  # noqa: E402
from atelier.eval.emoji import clip_readings, emoji_prompts  # noqa: E402
from atelier.eval.real_sets import tensors  # noqa: E402
from atelier.kinds.base import options_summary, with_options  # noqa: E402
from atelier.kinds.clip import load_clip  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402


def cells(axes: list[str]) -> list[dict[str, str]]:
    """The product of ``NAME=V1,V2,...`` axes, as one ``{NAME: value}`` per cell."""
    parsed = []
    for axis in axes:
        name, _, values = axis.partition("=")
        if not name or not values:
            raise SystemExit(f"--grid takes NAME=V1,V2,..., got {axis!r}")
        parsed.append([(name, v) for v in values.split(",")])
    return [dict(cell) for cell in itertools.product(*parsed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a text-to-image model of emoji")
    parser.add_argument("--grid", action="append", default=[], help="NAME=V1,V2 (repeatable)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds per caption")
    parser.add_argument("--clip-model", default="emoji-clip")
    parser.add_argument("--data", type=Path, default=None, help="default: the cached emoji set")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    model, clip = load_model(args.model), load_clip(args.clip_model)
    seeds = [int(s) for s in args.seeds.split(",")]
    seen = [p for p in emoji_prompts(args.data or real_folder("emoji")) if p.split == "seen"]
    jobs = [(p, s) for s in seeds for p in seen]
    rows = []
    for cell in cells(args.grid):
        try:
            options = with_options(model.defaults, cell, who=args.model)  # values as strings
        except ValueError as err:
            raise SystemExit(str(err)) from None
        began = time.process_time()
        images = model([p.prompt for p, _ in jobs], seeds=[s for _, s in jobs], options=options)
        seconds = (time.process_time() - began) / len(jobs)
        read = clip_readings(clip, tensors(images), [p for p, _ in jobs], categories=False)
        rows.append({"options": options_summary(options), "cell": cell,
                     "r_precision": read.r_precision.value, "chance": read.r_precision.chance,
                     "clip_score": read.clip_score, "cpu_s_per_image": seconds})  # fmt: skip
        print(f"{options_summary(options)}: R-precision {read.r_precision.value:.3f}, "
              f"CLIP score {read.clip_score:.2f}", file=sys.stderr)  # fmt: skip
    print(f"{args.model}: the {len(seen)} seen captions x {len(seeds)} seeds, read by "
          f"{args.clip_model} (R-precision chance {rows[0]['chance']:.3f})\n")
    print("| options | R-precision | CLIP score | CPU-s an image |")
    print("|---|--:|--:|--:|")
    for r in sorted(rows, key=lambda r: -r["r_precision"]):
        print(f"| {r['options']} | {r['r_precision']:.3f} | {r['clip_score']:.2f} "
              f"| {r['cpu_s_per_image']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
