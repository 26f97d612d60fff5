"""Steering by gradient against classifier-free guidance alone, on shapes-bench.

    OMP_NUM_THREADS=1 .venv/bin/python bench/steering.py [--model shapes-ldm-minilm]
        [--every 12] [--samples 1] [--clip-scales 100,1000] [--clip-model shapes-clip]
        [--noised-clip-model NAME] [--classifier-model NAME] [--classifier-scales 3,10]
        [--max-shift 1.0] [--vqgan-iterations 150] [--no-vqgan] [--json OUT]

Arms, each on the same prompts (every K-th of shapes-bench) and seeds: the model with its own
CFG; the same with CLIP guidance through x_0 at each scale; with a noised CLIP's guidance and with
the noise-aware classifier's (when given); and VQGAN-CLIP on shapes-vqgan (no diffusion model).
Prints each arm's pass rate, its paired difference to CFG alone (95% bootstrap interval over
prompts), its mean CLIP score (``--score-clip``'s, by default the guiding CLIP: guidance climbs
the very score it is judged by, so read it beside the judge's pass rate) and seconds per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.eval.clip_metrics import clip_scorer  # noqa: E402
from atelier.eval.shapes_bench import (  # noqa: E402
    generate_and_judge,
    paired_difference,
    summarize,
)
from atelier.kinds import tokenizer as tokenizer_kind  # noqa: E402
from atelier.kinds.clip import load_clip  # noqa: E402
from atelier.kinds.default import DEFAULT_MODEL  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.kinds.steering import SteerSpec, steered  # noqa: E402
from atelier.pipelines.vqgan_clip import VQGANCLIP, VQGANCLIPOptions  # noqa: E402
from atelier.shapes.bench import load_suite  # noqa: E402


def vqgan_arm(tokenizer: str, clip, iterations: int):
    """VQGAN-CLIP behind the text-to-image call shapes-bench makes."""
    tok = load_model(tokenizer, want=tokenizer_kind.KIND)
    pipe = VQGANCLIP(tok.tokenizer, clip, tok.resolution)
    steps = VQGANCLIPOptions(iterations=iterations)

    def draw(prompts, *, seeds, options=None):  # ``options`` are the diffusion arms'
        return [pipe(p, seed=s, options=steps).image for p, s in zip(prompts, seeds)]

    return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--every", type=int, default=1, help="every K-th prompt of the suite")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="CFG scale of every diffusion arm (0: the unconditional model)",
    )
    parser.add_argument("--clip-model", default="shapes-clip")
    parser.add_argument(
        "--score-clip", default=None, help="CLIP for the score (default: --clip-model)"
    )
    parser.add_argument("--clip-scales", default="100,1000")
    parser.add_argument("--noised-clip-model", default=None)
    parser.add_argument("--noised-clip-scales", default="3")
    parser.add_argument("--classifier-model", default=None)
    parser.add_argument("--classifier-scales", default="3")
    parser.add_argument(
        "--max-shift", type=float, default=1.0, help="every guided arm's cap on x_0's RMS change"
    )
    parser.add_argument("--tokenizer", default="shapes-vqgan")
    parser.add_argument("--vqgan-iterations", type=int, default=150)
    parser.add_argument("--no-vqgan", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    suite = load_suite()[:: args.every]
    model = load_model(args.model)
    options = model.defaults.overridden(guidance=args.guidance)
    score = clip_scorer(load_clip(args.score_clip or args.clip_model))
    arm0 = "CFG" if options.guidance else "uncond"
    arms = [(f"{arm0} alone", model)]
    cap = {"max_shift": args.max_shift}
    for s in (float(v) for v in args.clip_scales.split(",") if v):
        arms.append(
            (
                f"{arm0} + CLIP {s:g}",
                steered(model, SteerSpec("clip", s, args.clip_model, **cap)),
            )
        )
    if args.noised_clip_model:
        for s in (float(v) for v in args.noised_clip_scales.split(",")):
            arms.append(
                (
                    f"{arm0} + noised CLIP {s:g}",
                    steered(
                        model,
                        SteerSpec("clip", s, args.noised_clip_model, **cap),
                    ),
                )
            )
    if args.classifier_model:
        for s in (float(v) for v in args.classifier_scales.split(",")):
            arms.append(
                (
                    f"{arm0} + classifier {s:g}",
                    steered(
                        model,
                        SteerSpec("classifier", s, args.classifier_model, **cap),
                    ),
                )
            )
    if not args.no_vqgan:
        clip = load_clip(args.clip_model)
        arms.append(
            (
                f"VQGAN-CLIP {args.vqgan_iterations} it",
                vqgan_arm(args.tokenizer, clip, args.vqgan_iterations),
            )
        )
    print(f"{args.model}: {len(suite)} prompts (every {args.every}) x {args.samples} seeds; "
          f"{options.sampler}, {options.steps} steps, CFG {options.guidance}; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip

    rows, base = [], None
    for name, pipe in arms:
        seen: list = []
        began = time.process_time()
        judged, seconds = generate_and_judge(
            pipe, suite, options=options, samples=args.samples, progress=False, batch=8,
            on_image=lambda j, im, seen=seen: seen.append((im, j.prompt)),
        )  # fmt: skip
        images, prompts = [im for im, _ in seen], [p for _, p in seen]
        cpu = (time.process_time() - began) / max(len(judged), 1)
        clip_score = float(score(images, prompts).mean())
        overall = summarize(judged)["overall"]["all"]
        diff = paired_difference(base, judged)["overall"]["all"] if base is not None else None
        base = base if base is not None else judged
        rows.append({"arm": name, "pass": overall.accuracy, "pass_ci": [overall.low, overall.high],
                     "diff": None if diff is None else diff.accuracy,
                     "diff_ci": None if diff is None else [diff.low, diff.high],
                     "clip_score": clip_score, "seconds_per_image": seconds,
                     "cpu_seconds_per_image": cpu, "images": len(judged)})  # fmt: skip
        r = rows[-1]
        d = "-" if diff is None else f"{diff.accuracy:+.3f} [{diff.low:+.2f},{diff.high:+.2f}]"
        print(f"{name:<24} pass {r['pass']:.3f} [{overall.low:.2f},{overall.high:.2f}]  "
              f"vs {arm0} {d:<22} CLIP score {clip_score:6.2f}  {seconds:6.2f} s/img "
              f"({cpu:.2f} CPU-s)", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": args.model, "every": args.every, "samples": args.samples, "rows": rows},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
