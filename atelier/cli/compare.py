"""``atelier compare MODEL_A MODEL_B [MORE…] [--set MODEL:key=value …]``: the arena."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import typer

from atelier.atomic import write_atomic
from atelier.cli.common import load_generator
from atelier.cli.errors import fail, writable_folder
from atelier.shapes.bench import SUITE_NAME, load_suite


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
    prompts: str = typer.Option(SUITE_NAME, "--prompts", help="shapes-bench or a suite JSONL."),
    features: str = typer.Option("shapes-clip", "--features", help="CLIP for realism features."),
    real: int = typer.Option(1000, "--real", help="Real renders for the realism reference."),
    output: Path = typer.Option(Path("out/arena"), "-o", "--output", help="Output folder."),
) -> None:
    """Same prompts and seeds for every entrant; Bradley-Terry ratings on alignment and
    fidelity, win rates per category; writes JSON and a self-contained HTML page."""
    import torch

    from atelier.data.shapes import ShapesDataset
    from atelier.eval.arena import Entrant, arena_grid, arena_html, format_arena, run_arena
    from atelier.eval.clip_metrics import CLIPImageFeatures
    from atelier.kinds.base import with_options
    from atelier.kinds.clip import load_clip

    if len(models) < 2:
        raise fail("compare needs at least two models")
    if len(set(models)) != len(models):
        raise fail("give each model once; compare one model's settings with atelier sweep")
    if every < 1 or real < 4:
        raise fail("--every must be >= 1 and --real >= 4")
    writable_folder(output)
    try:
        per_model = _settings(settings, models)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        suite = load_suite(None if prompts == SUITE_NAME else prompts)[::every]
        clip = load_clip(features)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    entrants = []
    for name in models:
        loaded = load_generator(name)
        try:
            options = with_options(loaded.defaults, per_model[name], who=name)
        except ValueError as err:
            raise fail(str(err)) from None
        entrants.append(Entrant(name, loaded, options))
    data = ShapesDataset(real, resolution=64, seed=10_000, split="any")
    real_images = torch.stack([data[i][0] for i in range(len(data))])
    result = run_arena(entrants, suite, seeds=seed_list, extractor=CLIPImageFeatures(clip),
                       real_images=real_images)  # fmt: skip
    table = format_arena(result)
    typer.echo(table)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "entrants": {e.name: asdict(e.options) for e in entrants},
        "prompts": prompts, "every": every, "n_prompts": len(suite), "seeds": seed_list,
        "features": features, "real": real,
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
