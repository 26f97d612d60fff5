"""Composable diffusion (AUTOMATIC1111's AND) against plain prompts, on shapes-bench conjunctions.

    .venv/bin/python bench/composable.py [--model shapes-ldm-minilm] [--samples 2]
        [--guidance 3,1.5] [--weights 1]

The shapes-bench prompts of the form "X and Y" (two_objects and color_attribution) are generated
as written and as "X AND Y" (each object a sub-prompt of its own, composed by Liu et al. 2022's
sum of guidance terms), on the same seeds, and judged against the same spec. Composing two
sub-prompts adds two guidance terms, so composed arms run at each ``--guidance`` given (the plain
arm at the model's own). Prints each arm's pass rate, the paired difference to the plain arm and
the miss breakdown (is "wrong shape, borrowed", the binding error, down?).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.eval.shapes_bench import (  # noqa: E402
    format_table,
    generate_and_judge,
    miss_breakdown,
    paired_difference,
    summarize,
)
from atelier.kinds.default import DEFAULT_MODEL  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.shapes.bench import load_suite  # noqa: E402

CATEGORIES = ("two_objects", "color_attribution")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--guidance", default=None, help="composed arms' scales, comma-separated")
    parser.add_argument("--weights", default="1", help="the second sub-prompt's weight(s)")
    args = parser.parse_args()

    model = load_model(args.model)
    pipe = model.pipeline()
    options = model.config.defaults
    suite = [bp for bp in load_suite() if bp.category in CATEGORIES and " and " in bp.prompt]
    scales = [float(g) for g in args.guidance.split(",")] if args.guidance else [options.guidance]
    print(f"{args.model}: {len(suite)} prompts x {args.samples} seeds; {options.sampler}, "
          f"{options.steps} steps; plain CFG {options.guidance}")  # fmt: skip

    def run(prompts, arm_options):
        return generate_and_judge(
            pipe, prompts, options=arm_options, samples=args.samples, progress=False
        )

    plain, seconds = run(suite, options)
    rows = [("plain", plain, None, seconds)]
    for weight in (float(w) for w in args.weights.split(",")):
        tail = "" if weight == 1 else f" :{weight:g}"
        composed = [
            replace(bp, prompt=bp.prompt.replace(" and ", " AND ", 1) + tail) for bp in suite
        ]
        for scale in scales:
            results, seconds = run(composed, replace(options, guidance=scale))
            rows.append(
                (
                    f"AND w2={weight:g} CFG {scale:g}",
                    results,
                    paired_difference(plain, results),
                    seconds,
                )
            )

    print(f"\n{'arm':<26} {'pass (all)':>20} {'vs plain, paired':>22} {'s/img':>6}")
    for name, results, diff, seconds in rows:
        acc = summarize(results)["overall"]["all"]
        gain = diff["overall"]["all"] if diff else None
        cell = f"{acc.accuracy:.3f} [{acc.low:.2f},{acc.high:.2f}]"
        delta = f"{gain.accuracy:+.3f} [{gain.low:+.2f},{gain.high:+.2f}]" if gain else "-"
        print(f"{name:<26} {cell:>20} {delta:>22} {seconds:>6.2f}")
    for name, results, diff, _ in rows:
        print(f"\n{name}: {miss_breakdown(results)}")
        print(format_table(summarize(results)))
        if diff:
            print("paired difference to plain:")
            print(format_table(diff, signed=True))


if __name__ == "__main__":
    main()
