"""atelier sweep: axis parsing, the grid of cells, and the command's outputs on a tiny model."""

import csv
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.eval.sweep import format_cells, parse_axis, run_sweep
from atelier.kinds.registry import load_model
from atelier.shapes.bench import load_suite


def test_axes_are_typed_and_validated():
    assert parse_axis("guidance=1,2.5").values == (1.0, 2.5)
    assert parse_axis("steps= 5, 10").values == (5, 10)
    assert parse_axis("karras=true,0").values == (True, False)
    assert parse_axis("sampler=euler,heun").values == ("euler", "heun")
    assert parse_axis("guidance_rescale=0,0.7").values == (0.0, 0.7)
    with pytest.raises(ValueError, match=r"guidance_rescale must be in \[0, 1\]"):
        parse_axis("guidance_rescale=2")
    with pytest.raises(ValueError, match="sweepable"):
        parse_axis("seed=1,2")
    with pytest.raises(ValueError, match="name=v1,v2"):
        parse_axis("guidance")
    with pytest.raises(ValueError, match="not a valid steps"):
        parse_axis("steps=ten")
    with pytest.raises(ValueError, match="positive integer"):
        parse_axis("steps=0")
    with pytest.raises(ValueError, match="unknown sampler"):
        parse_axis("sampler=magic")


def test_grid_covers_every_combination_with_the_same_prompts(tiny_model_dir):
    tiny_model = load_model(tiny_model_dir)
    suite = load_suite()[:2]
    axes = [parse_axis("guidance=1,3"), parse_axis("sampler=euler,heun")]
    cells = run_sweep(tiny_model.pipeline(), suite, axes, base=tiny_model.config.defaults,
                      seeds=(0, 1), progress=False)  # fmt: skip
    assert [(c.settings["guidance"], c.settings["sampler"]) for c in cells] == [
        (1.0, "euler"), (1.0, "heun"), (3.0, "euler"), (3.0, "heun")
    ]  # fmt: skip
    steps = tiny_model.config.defaults.steps
    assert [c.nfe for c in cells] == [steps, 2 * steps - 1] * 2
    for c in cells:
        assert len(c.results) == 4 and {r.seed for r in c.results} == {0, 1}
        assert [r.id for r in c.results] == [r.id for r in cells[0].results]
        assert c.accuracy["all"].images == 4
    assert format_cells(cells).count("\n") == 5  # header, rule, four rows
    with pytest.raises(ValueError, match="one axis only"):
        run_sweep(tiny_model.pipeline(), suite, [axes[0], axes[0]],
                  base=tiny_model.config.defaults)  # fmt: skip


def test_sweep_command_writes_csv_json_and_table(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(
        app,
        ["sweep", str(tiny_model_dir), "--x", "guidance=1,2", "--y", "steps=1,2",
         "--every", "112", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "tiny-sweep.csv").open()))
    assert [(r["guidance"], r["steps"]) for r in rows] == [
        ("1.0", "1"), ("1.0", "2"), ("2.0", "1"), ("2.0", "2")
    ]  # fmt: skip
    report = json.loads((tmp_path / "tiny-sweep.json").read_text())
    assert report["n_prompts"] == 3 and len(report["cells"]) == 4
    assert "overall" in report["cells"][0]["by_category"]
    grid = Image.open(tmp_path / "tiny-sweep-grid.png")
    assert grid.size == (3 * 32, 4 * 32)  # a row of the 3 images per cell, 4 cells
    assert Image.open(tmp_path / "tiny-sweep-heatmap.png").size[0] > 100
    assert (tmp_path / "tiny-sweep.html").read_text().count("<img") == 1 + 4 * 3
    bad = CliRunner().invoke(app, ["sweep", str(tiny_model_dir), "--x", "cfg=1,2"])
    assert bad.exit_code != 0 and "sweepable" in bad.output
