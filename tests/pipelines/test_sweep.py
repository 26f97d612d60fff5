"""atelier sweep: axis parsing, the grid of cells, and the command's outputs on a tiny model of
each family (diffusion, DALL-E, MaskGIT), with its network passes per image."""

import csv
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.eval.sweep import format_cells, parse_axis, run_sweep
from atelier.kinds.registry import load_model
from atelier.shapes.bench import load_suite
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions
from tests.pipelines.token_models import tiny_token_model


def test_axes_are_typed_and_validated():
    def axis(text):  # a diffusion model's options
        return parse_axis(text, SamplingOptions())

    assert axis("guidance=1,2.5").values == (1.0, 2.5)
    assert axis("steps= 5, 10").values == (5, 10)
    assert axis("karras=true,0").values == (True, False)
    assert axis("sampler=euler,heun").values == ("euler", "heun")
    assert axis("guidance_rescale=0,0.7").values == (0.0, 0.7)
    with pytest.raises(ValueError, match=r"guidance_rescale must be in \[0, 1\]"):
        axis("guidance_rescale=2")
    with pytest.raises(ValueError, match="sweepable"):
        axis("seed=1,2")
    with pytest.raises(ValueError, match="name=v1,v2"):
        axis("guidance")
    with pytest.raises(ValueError, match="not a valid steps"):
        axis("steps=ten")
    with pytest.raises(ValueError, match="positive integer"):
        axis("steps=0")
    with pytest.raises(ValueError, match="unknown sampler"):
        axis("sampler=magic")


def test_token_axes_are_the_fields_of_their_kinds_options():
    masked, autoregressive = MaskedOptions(), AutoregressiveOptions()
    assert parse_axis("temperature=0.5,1", masked).values == (0.5, 1.0)
    assert parse_axis("steps=4,8", masked).values == (4, 8)
    assert parse_axis("schedule=linear,cosine", masked).values == ("linear", "cosine")
    assert parse_axis("top_k=0,8", autoregressive).values == (0, 8)
    assert parse_axis("top_p=0.9,1", autoregressive).values == (0.9, 1.0)
    with pytest.raises(ValueError, match="cannot sweep 'steps'; sweepable for tiny-dalle: "
                                         "temperature, top_k, top_p, guidance"):  # fmt: skip
        parse_axis("steps=4,8", autoregressive, who="tiny-dalle")
    with pytest.raises(ValueError, match="unknown schedule 'zigzag'"):
        parse_axis("schedule=zigzag", masked)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        parse_axis("top_p=0.5,2", autoregressive)
    with pytest.raises(ValueError, match="not a valid top_k value.*takes an integer"):
        parse_axis("top_k=1.5", autoregressive)


def test_token_models_count_a_pass_per_token_or_step_doubled_by_guidance():
    dalle, maskgit = tiny_token_model("dalle"), tiny_token_model("maskgit")  # 4x4 tokens
    assert dalle.network_evaluations(AutoregressiveOptions(guidance=3.0)) == 2 * 16
    assert dalle.network_evaluations(AutoregressiveOptions(guidance=1.0)) == 16
    assert maskgit.network_evaluations(MaskedOptions(steps=5, guidance=2.0)) == 2 * 5
    assert maskgit.network_evaluations(MaskedOptions(steps=5, guidance=1.0)) == 5
    assert maskgit.network_evaluations() == 2 * maskgit.defaults.steps


def test_grid_covers_every_combination_with_the_same_prompts(tiny_model_dir):
    tiny_model = load_model(tiny_model_dir)
    suite = load_suite()[:2]
    defaults = tiny_model.defaults
    axes = [parse_axis("guidance=1,3", defaults), parse_axis("sampler=euler,heun", defaults)]
    cells = run_sweep(tiny_model, suite, axes, seeds=(0, 1), progress=False)
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
        run_sweep(tiny_model, suite, [axes[0], axes[0]])


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
    # A row of the 3 images per cell, 4 cells, each tile enlarged to 128 px over its caption.
    assert grid.width > 3 * 128 and grid.height > 4 * 128
    assert Image.open(tmp_path / "tiny-sweep-heatmap.png").size[0] > 100
    assert (tmp_path / "tiny-sweep.html").read_text().count("<img") == 1 + 4 * 3
    bad = CliRunner().invoke(app, ["sweep", str(tiny_model_dir), "--x", "cfg=1,2"])
    assert bad.exit_code != 0 and "sweepable" in bad.output


def test_a_dalle_sweep_runs_every_cell_over_the_base_options():
    model = tiny_token_model("dalle")
    suite = load_suite()[:2]
    base = AutoregressiveOptions(top_k=4)
    axes = [parse_axis("temperature=0,1", base), parse_axis("guidance=1,2", base)]
    cells = run_sweep(model, suite, axes, base=base, seeds=(0,), progress=False)
    assert [c.settings for c in cells] == [
        {"temperature": t, "guidance": g} for t in (0.0, 1.0) for g in (1.0, 2.0)
    ]
    assert all(c.options.top_k == 4 for c in cells)
    assert [c.nfe for c in cells] == [16, 32] * 2
    assert all(len(c.images) == 2 and c.images[0].size == (16, 16) for c in cells)


def test_sweep_command_takes_a_token_models_own_axes(installed, tmp_path):
    result = CliRunner().invoke(
        app,
        ["sweep", "tiny-maskgit", "--x", "temperature=0.5,1", "--y", "steps=2,3",
         "--option", "guidance=1", "--every", "112", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "tiny-maskgit-sweep.json").read_text())
    cells = report["cells"]
    assert [(c["temperature"], c["steps"]) for c in cells] == [
        (0.5, 2), (0.5, 3), (1.0, 2), (1.0, 3)
    ]  # fmt: skip
    assert all(type(c["temperature"]) is float and type(c["steps"]) is int for c in cells)
    assert [c["nfe"] for c in cells] == [2, 3, 2, 3]  # one pass per step, unguided
    assert all(c["opt_guidance"] == 1.0 and c["opt_schedule"] == "cosine" for c in cells)
    rows = list(csv.DictReader((tmp_path / "tiny-maskgit-sweep.csv").open()))
    assert len(rows) == 4 and report["model"] == "tiny-maskgit"
    table = (tmp_path / "tiny-maskgit-sweep.md").read_text()
    assert table.startswith("| temperature | steps | NFE |") and table.count("\n") == 6
    grid = Image.open(tmp_path / "tiny-maskgit-sweep-grid.png")
    assert grid.width > 3 * 128 and grid.height > 4 * 128
    bad = CliRunner().invoke(app, ["sweep", "tiny-maskgit", "--x", "top_k=1,2"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert ("cannot sweep 'top_k'; sweepable for tiny-maskgit: steps, temperature, guidance, "
            "choice_temperature, schedule") in bad.output  # fmt: skip
