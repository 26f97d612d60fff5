"""``atelier sweep MODEL --x guidance=1,2,4 --y steps=10,20 [--z sampler=euler,heun]``: a grid over
any sampling option of the model's kind (a MaskGIT model: ``--x temperature=0.5,1 --y
steps=4,8``)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

import typer

from atelier.atomic import write_atomic
from atelier.cli.common import OPTION, generator_options, load_generator
from atelier.cli.errors import fail, writable_folder
from atelier.shapes.suite_name import SUITE_NAME


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{what} must be comma-separated integers, got {text!r}") from None


def sweep(
    model: str = typer.Argument(..., help="Model name or folder (any text-to-image kind)."),
    x: str = typer.Option(
        ...,
        "--x",
        help="First axis, e.g. guidance=1,2,4,8: any option of "
        "the model's kind (`atelier inspect MODEL` lists them).",
    ),
    y: str = typer.Option(None, "--y", help="Second axis, e.g. steps=5,10,20,50."),
    z: str = typer.Option(None, "--z", help="Third axis, e.g. sampler=euler,dpmpp_2m."),
    option: list[str] = OPTION,
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds; each cell uses all."),
    prompts: str = typer.Option(SUITE_NAME, "--prompts", help="shapes-bench or a suite JSONL."),
    every: int = typer.Option(1, "--every", help="Use every k-th prompt of the suite."),
    output: Path = typer.Option(Path("out/sweep"), "-o", "--output", help="Output folder."),
) -> None:
    """Judge the suite in every cell of the grid; write a table, CSV and JSON. Options not on an
    axis are the model's defaults, or those given with --option."""
    from atelier.eval.shapes_bench import to_json
    from atelier.eval.sweep import format_cells, parse_axis, run_sweep
    from atelier.shapes.bench import load_suite

    # The axes are checked against the options config.json states before any weight loads.
    listed, base, loaded = generator_options(model, {}, option)
    try:
        suite = load_suite(None if prompts == SUITE_NAME else prompts)
        axes = [parse_axis(a, base, who=listed.name) for a in (x, y, z) if a]
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    if every < 1:
        raise fail(f"--every must be >= 1, got {every}")
    writable_folder(output)
    seed_list = _ints(seeds, "--seeds")
    suite = suite[::every]
    loaded = loaded or load_generator(model)
    try:
        cells = run_sweep(loaded, suite, axes, base=base, seeds=seed_list)
    except ValueError as err:
        raise fail(str(err)) from None
    table = format_cells(cells)
    typer.echo(table)
    output.mkdir(parents=True, exist_ok=True)
    rows = [c.row() for c in cells]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    stem = f"{loaded.name}-sweep"
    write_atomic(output / f"{stem}.csv", buffer.getvalue())
    write_atomic(output / f"{stem}.md", table + "\n")
    report = {
        "model": loaded.name,
        "model_hash": loaded.model_hash,
        "prompts": prompts,
        "every": every,
        "n_prompts": len(suite),
        "seeds": seed_list,
        "axes": [asdict(a) for a in axes],
        "cells": [{**c.row(), "by_category": to_json(c.by_category)} for c in cells],
    }
    write_atomic(output / f"{stem}.json", json.dumps(report, indent=1))
    _pictures(cells, axes, output, stem, table)
    typer.echo(str(output / f"{stem}.csv"))
    typer.echo(str(output / f"{stem}.html"))


def _pictures(cells, axes, output: Path, stem: str, table: str) -> None:
    """The image grid (a row per cell), the heatmap PNG, and an HTML page holding both."""
    from PIL import Image

    from atelier.eval.html import image_tag, page
    from atelier.eval.html import table as html_table
    from atelier.eval.sweep import grid_png, heatmaps

    grid = grid_png(cells, title=f"sweep: {stem}")
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    write_atomic(output / f"{stem}-grid.png", buffer.getvalue())
    figure = heatmaps(cells, axes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    write_atomic(output / f"{stem}-heatmap.png", buffer.getvalue())
    heat = Image.open(io.BytesIO(buffer.getvalue()))
    names = list(cells[0].settings)
    rows = [[*(c.settings[n] for n in names), "-" if c.nfe is None else c.nfe,
             f"{c.seconds_per_image:.3f}",
             *(f"{c.accuracy[s].accuracy:.3f}" if s in c.accuracy else "-"
               for s in ("seen", "held_out", "all"))] for c in cells]  # fmt: skip
    strips = "".join(
        f"<p>{', '.join(f'{k}={v}' for k, v in c.settings.items())}</p>"
        + "".join(image_tag(im, scale=2) for im in c.images)
        for c in cells
    )
    html = page(f"sweep: {stem}", [
        image_tag(heat, scale=1),
        html_table([*names, "NFE", "s/image", "seen", "held-out", "all"], rows),
        strips,
    ])  # fmt: skip
    write_atomic(output / f"{stem}.html", html)
