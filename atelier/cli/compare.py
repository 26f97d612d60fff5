"""``atelier compare MODEL_A MODEL_B [MORE…] [--set MODEL:key=value …]``: the arena."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import typer

from atelier.atomic import write_atomic
from atelier.cli.common import describe_generator, load_generator, suite_of
from atelier.cli.errors import fail, writable_folder
from atelier.shapes.suite_name import SUITE_NAME


def _settings(items: list[str], models: list[str]) -> dict[str, dict]:
    """``["shapes-ldm:steps=10", ...]`` -> {model: {"steps": "10"}}; each model's kind types and
    checks its own options."""
    from atelier.kinds.base import parse_assignments

    out: dict[str, dict] = {m: {} for m in models}
    for item in items:
        model, sep, setting = item.rpartition(":")
        if not sep or model not in out:
            raise ValueError(
                f"--set {item!r} must be MODEL:key=value with MODEL one of {', '.join(models)}"
            )
        out[model] |= parse_assignments([setting])
    return out


def compare(
    models: list[str] = typer.Argument(..., help="Two or more model names or folders."),
    settings: list[str] = typer.Option([], "--set", help="Per model, e.g. shapes-ldm:steps=10."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds for every entrant."),
    every: int = typer.Option(1, "--every", help="Use every k-th prompt of the suite."),
    suite: str = typer.Option(
        None,
        "--suite",
        help="shapes-bench, digits, emoji, or a shapes suite JSONL (default: the suite of what "
        "the first model's card says it was trained on; shapes-bench otherwise).",
    ),  # fmt: skip
    prompts: str = typer.Option(None, "--prompts", help="Same as --suite (kept for scripts)."),
    features: str = typer.Option(
        None,
        "--features",
        help="Fidelity's features: shapes-bench a CLIP (shapes-clip), emoji a feature network "
        "(emoji-features); digits uses the judge's.",
    ),  # fmt: skip
    judge: str = typer.Option(
        None,
        "--judge",
        help="The alignment judge of a real set: digits a digit classifier (mnist-classifier), "
        "emoji a CLIP (emoji-clip).",
    ),  # fmt: skip
    data: Path = typer.Option(
        None,
        "--data",
        help="The built real set (atelier data mnist|emoji -o DIR); default: the "
        "data cache's, built on first use.",
    ),  # fmt: skip
    real: int = typer.Option(1000, "--real", help="shapes-bench: fresh renders for fidelity."),
    output: Path = typer.Option(Path("out/arena"), "-o", "--output", help="Output folder."),
) -> None:
    """Same prompts and seeds for every entrant; Bradley-Terry ratings on alignment and
    fidelity, win rates per category; writes JSON and a self-contained HTML page. The suite's
    judge decides alignment: the shapes judge, the digit judge, or an emoji CLIP's reading of
    the name."""
    from atelier.eval.arena import Entrant, arena_grid, arena_html, format_arena, run_arena
    from atelier.kinds.base import with_options

    if len(models) < 2:
        raise fail("compare needs at least two models")
    if len(set(models)) != len(models):
        raise fail("give each model once; compare one model's settings with atelier sweep")
    if every < 1 or real < 4:
        raise fail("--every must be >= 1 and --real >= 4")
    if suite and prompts and suite != prompts:
        raise fail("give the suite once: --suite (or its old name --prompts)")
    name = suite or prompts or suite_of(models[0])
    for model in models:  # a missing model fails here, before the suite and its data are built
        describe_generator(model)
    writable_folder(output)
    try:
        per_model = _settings(settings, models)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        arena = _arena_suite(name, every=every, features=features, judge=judge, data=data,
                             real=real)  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    entrants = []
    for model in models:
        loaded = load_generator(model)
        try:
            options = with_options(loaded.defaults, per_model[model], who=model)
        except ValueError as err:
            raise fail(str(err)) from None
        entrants.append(Entrant(model, loaded, options))
    result = run_arena(entrants, arena, seeds=seed_list)
    table = format_arena(result)
    typer.echo(table)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "entrants": {e.name: asdict(e.options) for e in entrants},
        "suite": name, "every": every, "n_prompts": len(arena.prompts), "seeds": seed_list,
        "features": features, "judge": judge, "reference": arena.reference,
        "ratings": {q: {n: asdict(r) for n, r in v.items()} for q, v in result.ratings.items()},
        "win_rates": result.win_rates, "accuracy": result.accuracy,
        "mean_realism": result.mean_realism, "seconds_per_image": result.seconds_per_image,
    }  # fmt: skip
    write_atomic(output / "arena.json", json.dumps(report, indent=1))
    write_atomic(output / "arena.md", table + "\n")
    write_atomic(output / "arena.html", arena_html(result))
    grid = io.BytesIO()
    arena_grid(result).save(grid, format="PNG")
    write_atomic(output / "arena-grid.png", grid.getvalue())
    typer.echo(str(output / "arena.html"))
    typer.echo(str(output / "arena-grid.png"))


def _arena_suite(name: str, *, every: int, features: str | None, judge: str | None,
                 data: Path | None, real: int):  # fmt: skip
    """The arena suite ``name`` (``eval/arena_suites.py``) with its judge and features, each
    named or its suite's default; a missing judge says how to train it."""
    from atelier.cli.evaluate_real import DIGIT_JUDGE, set_folder
    from atelier.eval import arena_suites

    if name == "digits":
        if features:
            raise ValueError("the digits suite measures fidelity in its judge's features; "
                             "drop --features (name the judge with --judge)")  # fmt: skip
        return _needing("the digit judge", "mnist-classifier",
                        lambda: arena_suites.digits_suite(
                            set_folder(name, data), every=every,
                            classifier=judge or DIGIT_JUDGE))  # fmt: skip
    if name == "emoji":
        return _needing("emoji-clip and emoji-features", "emoji-clip and emoji-features",
                        lambda: arena_suites.emoji_suite(
                            set_folder(name, data), every=every, clip_model=judge or "emoji-clip",
                            features=features or "emoji-features"))  # fmt: skip
    if judge or data:
        raise ValueError("--judge and --data are for the real sets (digits, emoji); the shapes "
                         "world is judged exactly")  # fmt: skip
    return arena_suites.shapes_suite(None if name == SUITE_NAME else name, every=every,
                                     features=features or "shapes-clip", real=real)  # fmt: skip


def _needing(what: str, recipes: str, build):
    try:
        return build()
    except FileNotFoundError as err:
        how = ", then ".join(f"`atelier train {r}`" for r in recipes.split(" and "))
        raise FileNotFoundError(f"{err}; the suite needs {what}: {how}") from None
