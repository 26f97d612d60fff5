"""Images per second of text-to-image models at their defaults, at batch 1 and batch 64,
measured side by side in one run (one thread unless OMP_NUM_THREADS says otherwise).

    OMP_NUM_THREADS=1 .venv/bin/python bench/speed.py [--models shapes-gan,shapes-ldm-minilm]
        [--singles 5] [--batch 64] [--json OUT]

Each model is warmed up with one image first; batch 1 is the median of ``--singles`` one-image
calls, batch 64 one call of 64 prompts (seeds 0..63). Ratios are to the first model's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.kinds.registry import load_text_to_image  # noqa: E402

PROMPTS = [
    "a red circle above a blue square",
    "two green triangles",
    "a small yellow square on the left",
    "a purple circle and a cyan triangle",
]


def timed(model, prompts: list[str], seeds: list[int]) -> float:
    began = time.perf_counter()
    model(prompts, seeds=seeds)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="shapes-gan,shapes-ldm-minilm")
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}; batch 1: median of {args.singles}; "
          f"batch {args.batch}: one call")  # fmt: skip
    rows = []
    for name in args.models.split(","):
        model = load_text_to_image(name)
        timed(model, PROMPTS[:1], [0])  # warm-up: first-call allocations, caches
        singles = [timed(model, [PROMPTS[k % len(PROMPTS)]], [k]) for k in range(args.singles)]
        one = statistics.median(singles)
        prompts = [PROMPTS[k % len(PROMPTS)] for k in range(args.batch)]
        many = timed(model, prompts, list(range(args.batch))) / args.batch
        rows.append({"model": name, "batch1_s": one, "batch1_per_s": 1 / one,
                     f"batch{args.batch}_s_per_image": many,
                     f"batch{args.batch}_per_s": 1 / many})  # fmt: skip
    first = rows[0]
    key = f"batch{args.batch}_per_s"
    print(f"| model | batch 1 images/s | x {first['model']} | batch {args.batch} images/s "
          f"| x {first['model']} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch1_per_s']:.2f} | "
              f"{r['batch1_per_s'] / first['batch1_per_s']:.2f} | {r[key]:.2f} | "
              f"{r[key] / first[key]:.2f} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
