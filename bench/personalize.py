"""Personalisation, measured: each method teaches the default model the concept set's cross
(``atelier/shapes/concept.py``), then

- concept success: the strict judge (with the cross prototype) on the concept suite's 24 prompts,
  which ask for colours and cells the training images never showed, ``--seeds`` images each;
  "drawn" counts images holding the asked cross whatever else is wrong;
- forgetting: shapes-bench accuracy (every ``--every``-th prompt, one image each, the model's
  own sampler) with the fine-tune applied, paired with the base on the same prompts and seeds.

Runs train into ``--home`` (a fresh ATELIER_HOME: nothing lands in ~/.cache/atelier/runs); an
installed result is reused. Prints a table and writes ``--out``/personalize.json.

    OMP_NUM_THREADS=1 python bench/personalize.py --home /tmp/ph --out bench/results/personalize
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONVS = 'personal.lora.targets=["to_q","to_k","to_v","to_out","conv1","conv2","conv"]'
METHODS = {
    # name: (recipe, overrides)
    "lora": ("lora", ["personal.prior_weight=0"]),
    # LoCon: the resnets' and resampling convolutions as well as the attention.
    "lora-conv": ("lora", ["personal.prior_weight=0", CONVS]),
    # With prior preservation (as diffusers' DreamBooth-LoRA script offers it) on 48 images the
    # base draws of random shapes-world captions ("world"), or of the concept's captions with
    # the token replaced by circle, square, triangle ("captions").
    "lora-world": ("lora", []),
    "lora-conv-world": ("lora", [CONVS]),
    # Second attempt at forgetting: Custom Diffusion (Kumari et al., 2023) adapts only the
    # cross-attention's key and value, the layers that read the text, so prompts without the
    # token move less; and the world prior with twice the images at three times the weight.
    "lora-kv-world": ("lora", ['personal.lora.targets=["attn2.to_k","attn2.to_v"]']),
    "lora-world-strong": ("lora", ["personal.class_images=96", "personal.prior_weight=3"]),
    "dreambooth": ("dreambooth", []),
    "dreambooth-world": ("dreambooth", ["personal.class_prompts=world"]),
    "dreambooth-no-prior": ("dreambooth", ["personal.prior_weight=0"]),
    "textual-inversion": ("textual-inversion", []),
}


def train(method: str, extra: list[str]) -> tuple[Path, float]:
    """The method's installed result (trained now unless installed already) and its CPU-min."""
    from atelier.kinds.adapters import embeddings_dir, loras_dir
    from atelier.paths import home
    from atelier.training.overrides import apply_overrides
    from atelier.training.recipes import get_recipe
    from atelier.training.run import run_recipe

    recipe_name, overrides = METHODS[method]
    recipe = apply_overrides(get_recipe(recipe_name), overrides + extra)
    recipe = replace(recipe, name=f"bench-{method}")
    run_dir = home() / "runs" / recipe.name
    installed = {"lora": loras_dir(), "textual-inversion": embeddings_dir()}.get(
        recipe_name, home() / "models") / recipe.name  # fmt: skip
    if not (installed / "README.md").is_file():
        run_recipe(recipe, out=run_dir, resume=run_dir.is_dir(),
                   command=f"bench/personalize.py ({method})")  # fmt: skip
    cpu = sum(json.loads((run_dir / "cpu_seconds.json").read_text()))
    return installed, cpu / 60


def generator(method: str, path: Path | None):
    """(model, prompt suffix) that draws with the method applied (None: the base)."""
    from atelier.kinds.registry import load_text_to_image

    recipe = METHODS.get(method, ("",))[0]
    model = load_text_to_image(path if recipe == "dreambooth" else "shapes-ldm-minilm")
    # The installed word "sks" (textual inversion's) must not load into the other methods.
    model.auto_embeddings = False
    if recipe == "textual-inversion":
        model.use_embeddings([path])
    suffix = f" <lora:{path.name}:1>" if METHODS.get(method, ("",))[0] == "lora" else ""
    return model, suffix


def concept_success(model, suffix: str, seeds: int) -> dict:
    from atelier.shapes.concept import concept_drawn, concept_suite, judge_concept

    suite = concept_suite("sks")
    passed, drawn = [], []
    for prompt in suite:
        images = model([prompt.prompt + suffix] * seeds, seeds=list(range(seeds)))
        for image in images:
            verdict = judge_concept(np.asarray(image), prompt)
            passed.append(verdict.passed)
            drawn.append(concept_drawn(verdict, prompt))
    return {"pass": float(np.mean(passed)), "drawn": float(np.mean(drawn)), "images": len(passed)}


def bench(model, suffix: str, every: int):
    from atelier.eval.shapes_bench import generate_and_judge
    from atelier.shapes.bench import load_suite

    suite = [replace(bp, prompt=bp.prompt + suffix) for bp in load_suite()[::every]]
    results, _ = generate_and_judge(model, suite, options=model.defaults, samples=1, seed=0,
                                    progress=False)  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("bench/results/personalize"))
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--concept-only",
        action="store_true",
        help="judge the concept suite again for --methods (and the base), keeping their "
        "training and shapes-bench figures",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="METHOD:key=value, a recipe override for one method",
    )
    args = parser.parse_args()
    os.environ["ATELIER_HOME"] = str(args.home)
    from atelier.eval.shapes_bench import Judged, paired_difference
    from atelier.training.callbacks import process_cpu_seconds

    started = process_cpu_seconds()
    file = args.out / "personalize.json"
    report = json.loads(file.read_text()) if file.is_file() else {}
    if (report.get("every"), report.get("seeds")) != (args.every, args.seeds):
        report = {"every": args.every, "seeds": args.seeds, "methods": {}}
    if args.concept_only:
        base, _ = generator("base", None)
        report["base"]["concept"] = concept_success(base, "", args.seeds)
        for method in args.methods.split(","):
            path, _ = train(method, [])  # installed: nothing is trained
            model, suffix = generator(method, path)
            report["methods"][method]["concept"] = concept_success(model, suffix, args.seeds)
            print(method, report["methods"][method]["concept"], flush=True)
    if "images" not in report.get("base", {}):  # judged once and kept, paired by seed
        base, _ = generator("base", None)
        results = bench(base, "", args.every)
        report["base"] = {"concept": concept_success(base, "", args.seeds),
                          "bench": float(np.mean([r.passed for r in results])),
                          "images": [asdict(r) for r in results]}  # fmt: skip
    base_bench = [Judged(**{**r, "reasons": tuple(r["reasons"]), "misses": tuple(r["misses"])})
                  for r in report["base"]["images"]]  # fmt: skip
    base_concept = report["base"]["concept"]
    print(
        f"base: concept {base_concept}, bench {report['base']['bench']:.3f} "
        f"({len(base_bench)} images)",
        flush=True,
    )
    for method in [] if args.concept_only else args.methods.split(","):
        extra = [o.split(":", 1)[1] for o in args.override if o.split(":", 1)[0] == method]
        began = time.time()
        path, cpu_min = train(method, extra)
        model, suffix = generator(method, path)
        concept = concept_success(model, suffix, args.seeds)
        results = bench(model, suffix, args.every)
        diff = paired_difference(base_bench, results)["overall"]["all"]
        row = {"cpu_minutes": round(cpu_min, 2), "concept": concept,
               "bench": float(np.mean([r.passed for r in results])),
               "forgetting": {"difference": diff.accuracy, "low": diff.low, "high": diff.high},
               "overrides": extra,
               "wall_minutes": round((time.time() - began) / 60, 1)}  # fmt: skip
        report["methods"][method] = row
        print(f"{method}: {json.dumps(row)}", flush=True)
    spent = report.get("measuring_cpu_minutes", [])
    report["measuring_cpu_minutes"] = [*(spent if isinstance(spent, list) else [spent])]
    report["measuring_cpu_minutes"].append(
        round((process_cpu_seconds() - started) / 60, 1)
    )  # one entry per invocation
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "personalize.json").write_text(json.dumps(report, indent=1))
    print(f"{'method':<22}{'CPU-min':>8}{'concept pass':>14}{'drawn':>8}{'bench':>8}"
          f"{'vs base [95% CI]':>26}")  # fmt: skip
    print(f"{'base':<22}{'-':>8}{base_concept['pass']:>14.3f}{base_concept['drawn']:>8.3f}"
          f"{report['base']['bench']:>8.3f}")  # fmt: skip
    for method, row in report["methods"].items():
        f = row["forgetting"]
        print(f"{method:<22}{row['cpu_minutes']:>8.1f}{row['concept']['pass']:>14.3f}"
              f"{row['concept']['drawn']:>8.3f}{row['bench']:>8.3f}"
              f"{f['difference']:>+10.3f} [{f['low']:+.3f}, {f['high']:+.3f}]")  # fmt: skip


if __name__ == "__main__":
    main()
