"""``atelier eval MODEL [--suite shapes-bench|digits|emoji|FILE]``: a text-to-image model
measured by its suite, as JSON and HTML. The suite defaults to the data the model card says it
was trained on; ``cli/evaluate_real.py`` measures the real sets."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from atelier.atomic import write_atomic
from atelier.budget import check_images, check_seed
from atelier.cli.common import (
    DIFFUSION_PANEL,
    EMBEDDING,
    GUIDANCE,
    GUIDANCE_RESCALE,
    LORA,
    OPTION,
    STEPS,
    generator_options,
    load_generator,
    personalised,
    reranker,
    suite_of,
)
from atelier.cli.errors import fail, writable_folder
from atelier.shapes.suite_name import SUITE_NAME

if TYPE_CHECKING:
    from atelier.eval.shapes_bench import Judged


def _metrics(images, prompts, features: str, clip_model: str):
    """Distribution metrics with every evaluator that is installed, and the CLIP score."""
    from atelier.eval.clip_metrics import CLIPImageFeatures
    from atelier.eval.fid import Resized
    from atelier.eval.report import clip_score_pair, distribution_metrics
    from atelier.kinds.clip import load_clip
    from atelier.kinds.features import load_feature_net

    measured, clip_score = [], None
    if len(images) < 4:
        typer.echo("note: FID/KID and CLIP score need at least 4 images; skipped")
        return measured, clip_score
    try:
        net = load_feature_net(features)
        extractor = Resized(net, net.config.image_size)
        measured.append(distribution_metrics(features, extractor, images))
    except FileNotFoundError:
        typer.echo(
            f"note: no {features} model; its FID/KID skipped (atelier train shapes-features)"
        )
    try:
        clip = load_clip(clip_model)
        measured.append(
            distribution_metrics(f"{clip_model} image tower", CLIPImageFeatures(clip), images)
        )
        clip_score = clip_score_pair(clip, images, prompts)
    except FileNotFoundError:
        typer.echo(f"note: no {clip_model} model; CLIP score skipped (atelier train shapes-clip)")
    for m in measured:
        typer.echo(
            f"{m.extractor}: FID {m.fid:.3f} (floor {m.fid_floor:.3f}), KID {m.kid:.4f} "
            f"(floor {m.kid_floor:.4f}), precision {m.precision:.3f}, "
            f"recall {m.recall:.3f}, n={m.n}"
        )
    if clip_score is not None:
        typer.echo(f"CLIP score {clip_score[0]:.2f} (real renders {clip_score[1]:.2f})")
    return measured, clip_score


def evaluate(
    model: str = typer.Argument(..., help="Model name or folder."),
    suite: str = typer.Option(
        None,
        "--suite",
        help="shapes-bench, digits, emoji or a suite JSONL file (default: the suite of what the "
        "model card says it was trained on; shapes-bench otherwise).",
    ),
    samples: int = typer.Option(1, "--samples", help="Images per prompt (seeds seed..seed+N-1)."),
    seed: int = typer.Option(0, "--seed"),
    sampler: str = typer.Option(
        None, "--sampler", help="Sampler (default: the model's).", rich_help_panel=DIFFUSION_PANEL
    ),  # fmt: skip
    steps: int = STEPS,
    guidance: float = GUIDANCE,
    guidance_rescale: float = GUIDANCE_RESCALE,
    option: list[str] = OPTION,
    limit: int = typer.Option(None, "--limit", help="Only the first N prompts (a quick look)."),
    every: int = typer.Option(
        1,
        "--every",
        help="Only every Nth prompt of the suite (a subset spread over its categories and "
        "splits, which run in order).",
    ),  # fmt: skip
    lora: list[str] = LORA,
    embedding: list[str] = EMBEDDING,
    output: Path = typer.Option(Path("out/eval"), "-o", "--output", help="Folder for the JSON."),
    card: bool = typer.Option(False, "--card", help="Write the scores into the model card."),
    candidates: int = typer.Option(1, "--candidates", help="Candidates drawn per image."),
    rerank: str = typer.Option(None, "--rerank", help="Keep the best candidate by: clip."),
    clip_model: str = typer.Option(
        None,
        "--clip-model",
        help="CLIP for --rerank, CLIP score and CLIP-feature FID (default: shapes-clip; emoji: "
        "emoji-clip).",
    ),
    features: str = typer.Option(
        None,
        "--features",
        help="Feature network for FID/KID (default: shapes-features; emoji: emoji-features).",
    ),
    metrics: bool = typer.Option(True, "--metrics/--no-metrics", help="FID, KID, CLIP score."),
    data: Path = typer.Option(
        None,
        "--data",
        help="digits, emoji: the folder `atelier data mnist|emoji -o DIR` wrote (default: built "
        "into the data cache).",
    ),
    judge: str = typer.Option(
        None, "--judge", help="digits: the digit classifier that reads them (mnist-classifier)."
    ),
) -> None:
    """Generate every suite prompt, judge each image, report accuracy with 95% intervals,
    FID/KID/precision/recall and CLIP score beside their floors; writes JSON and HTML. Models of
    real pictures: the digits suite (the share the digit judge reads as asked, per digit) or
    the emoji suite (held-out names: FID/KID, CLIP score, R-precision, categories)."""
    from atelier.cli.evaluate_real import REAL_SUITES, evaluate_real_set
    from atelier.eval.report import eval_grid, eval_html, metrics_json
    from atelier.eval.shapes_bench import (
        format_table,
        generate_and_judge,
        miss_breakdown,
        summarize,
        to_json,
    )
    from atelier.kinds.base import options_label, options_summary
    from atelier.kinds.card import SHAPES_BENCH_HEADING, replace_section

    suite = suite or suite_of(model)
    if suite in REAL_SUITES:
        if candidates > 1 or rerank or lora or embedding:
            raise fail(f"the {suite} suite measures the model itself; drop --candidates, "
                       "--rerank, --lora and --embedding")  # fmt: skip
        if samples < 1 or every < 1 or (limit is not None and limit < 1):
            raise fail("--samples, --every and --limit must be at least 1")
        if card and (every > 1 or limit is not None):
            raise fail("--card records the model's scores on the whole suite; drop --every "
                       "and --limit")  # fmt: skip
        try:
            check_images(samples)  # the whole count once the suite is read, before drawing
            check_seed(seed)
        except ValueError as err:
            raise fail(str(err)) from None
        flags = {"sampler": sampler, "steps": steps, "guidance": guidance,
                 "guidance_rescale": guidance_rescale}  # fmt: skip
        _, options, loaded = generator_options(model, flags, option)
        evaluate_real_set(loaded or load_generator(model), options, suite=suite,
                          samples=samples, seed=seed, every=every, limit=limit, output=output,
                          card=card, data=data, judge=judge, features=features,
                          clip_model=clip_model, metrics=metrics)  # fmt: skip
        return
    from atelier.shapes.bench import load_suite

    clip_model = clip_model or "shapes-clip"
    features = features or "shapes-features"
    try:
        prompts = load_suite(None if suite == SUITE_NAME else suite)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    if card and candidates > 1:
        raise fail("--card records the model's plain scores; run reranked evals without --card")
    if samples < 1 or every < 1 or (limit is not None and limit < 1):
        raise fail("--samples, --every and --limit must be at least 1")
    if card and (every > 1 or lora or embedding):
        raise fail("--card records the model's own scores on the whole suite; drop --every, "
                   "--lora and --embedding")  # fmt: skip
    prompts = prompts[::every]
    if limit is not None:
        prompts = prompts[:limit]
    try:
        check_images(len(prompts) * samples * candidates)
        check_seed(seed)
    except ValueError as err:
        raise fail(str(err)) from None
    writable_folder(output)
    flags = {"sampler": sampler, "steps": steps, "guidance": guidance,
             "guidance_rescale": guidance_rescale}  # fmt: skip
    _, options, loaded = generator_options(model, flags, option)
    loaded = loaded or load_generator(model)
    if lora or embedding:
        tagged = personalised(loaded, [bp.prompt for bp in prompts], lora, embedding)
        prompts = [replace(bp, prompt=text) for bp, text in zip(prompts, tagged)]
    pipe = reranker(loaded, candidates, rerank, clip_model)
    images: list = []
    results, seconds = generate_and_judge(
        pipe, prompts, options=options, samples=samples, seed=seed,
        on_image=lambda _, image: images.append(image),
    )  # fmt: skip
    table = summarize(results)
    typer.echo(format_table(table))
    typer.echo(miss_breakdown(results))
    typer.echo(f"{seconds:.2f} s per image; {len(results)} images")
    measured, clip_score = (
        _metrics(images, [r.prompt for r in results], features, clip_model)
        if metrics
        else ([], None)
    )
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "model": loaded.name,
        "model_hash": loaded.model_hash,
        "suite": suite,
        "options": asdict(options),
        "samples": samples,
        "candidates": candidates,
        "rerank": rerank,
        "seed": seed,
        "every": every,
        "loras": list(lora),
        "embeddings": list(embedding),
        "seconds_per_image": seconds,
        "accuracy": to_json(table),
        "distribution": metrics_json(measured),
        "clip_score": {"generated": clip_score[0], "real": clip_score[1]} if clip_score else None,
        "images": [asdict(r) for r in results],
    }
    ranked = f"-rerank{candidates}" if candidates > 1 else ""
    adapted = "".join(f"-lora-{item.replace(':', '@')}" for item in lora)
    adapted += "".join(f"-emb-{Path(item).stem}" for item in embedding)
    subset = f"-every{every}" if every > 1 else ""
    stem = f"{loaded.name}{adapted}-{options_label(options)}{ranked}{subset}"
    path = output / f"{stem}.json"
    write_atomic(path, json.dumps(report, indent=1))
    typer.echo(str(path))
    page = eval_html(
        f"{loaded.name} on {suite}", table, results, images, metrics=measured,
        clip_score=clip_score, seconds_per_image=seconds,
        settings={**asdict(options), "samples": samples, "seed": seed, "candidates": candidates},
    )  # fmt: skip
    write_atomic(path.with_suffix(".html"), page)
    typer.echo(str(path.with_suffix(".html")))
    grid = io.BytesIO()
    title = f"{loaded.name} on {suite}: {options_summary(options)}, seeds from {seed}"
    eval_grid(title, table, results, images).save(grid, format="PNG")
    write_atomic(output / f"{stem}-grid.png", grid.getvalue())
    typer.echo(str(output / f"{stem}-grid.png"))
    if card and loaded.path is not None:
        section = (
            f"{SHAPES_BENCH_HEADING}\n\n{samples} image(s) per prompt, seeds from {seed}; "
            f"{options_summary(options)}; "
            f"{seconds:.2f} s per image. Accuracy [95% bootstrap interval], judged strictly:\n\n"
            f"```\n{format_table(table)}\n```\n"
        )
        readme = loaded.path / "README.md"
        write_atomic(readme, replace_section(readme.read_text(), section))


def _read_eval(path: Path) -> tuple[dict, list[Judged]]:
    from atelier.eval.shapes_bench import Judged

    try:
        report = json.loads(path.read_text())
        images = [
            Judged(**{**r, "reasons": tuple(r["reasons"]), "misses": tuple(r.get("misses", ()))})
            for r in report["images"]
        ]
    except FileNotFoundError:
        raise fail(f"no eval JSON at {path}; `atelier eval MODEL -o DIR` writes one") from None
    except OSError as err:
        raise fail(f"cannot read {path} ({err.strerror or err})") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise fail(f"{path} is not an `atelier eval` JSON (it needs an 'images' list)") from None
    return report, images


def _describe(report: dict) -> str:
    o = report.get("options", {})
    if "sampler" not in o:  # a family without samplers: its options as they are
        return f"{report.get('model')} ({', '.join(f'{k} {v}' for k, v in o.items())})"
    rescale = f", rescale {o['guidance_rescale']}" if o.get("guidance_rescale") else ""
    return (f"{report.get('model')} ({o.get('sampler')} {o.get('steps')} steps, "
            f"CFG {o.get('guidance')}{rescale})")  # fmt: skip


def eval_diff(
    before: Path = typer.Argument(..., help="Eval JSON of the baseline."),
    after: Path = typer.Argument(..., help="Eval JSON of the candidate (same prompts, seeds)."),
) -> None:
    """Paired comparison of two evals: after minus before, per category and split, with 95%
    bootstrap intervals over prompts."""
    from atelier.eval.shapes_bench import format_table, paired_difference

    (a_report, a), (b_report, b) = _read_eval(before), _read_eval(after)
    try:
        table = paired_difference(a, b)
    except ValueError as err:
        raise fail(str(err)) from None
    typer.echo(f"before: {_describe(a_report)}\nafter:  {_describe(b_report)}")
    rate_a, rate_b = (sum(r.passed for r in x) / len(x) for x in (a, b))
    typer.echo(f"{len(a)} paired images; accuracy {rate_a:.3f} -> {rate_b:.3f}")
    typer.echo(format_table(table, signed=True))
    o = table["overall"]["all"]
    typer.echo(f"overall difference {o.accuracy:+.3f} [{o.low:+.3f}, {o.high:+.3f}]")
