"""The arena: same prompts and seeds for every entrant, pairwise outcomes, ratings, report."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.base import array_to_tensor
from atelier.eval.arena import Entrant, arena_grid, arena_html, run_arena
from atelier.eval.arena_suites import ArenaSuite, shapes_judge
from atelier.shapes.bench import load_suite


class Fixed:
    """A fake pipeline returning a render or a blank image per prompt, by a rule."""

    def __init__(self, good):
        self.good = good

    def __call__(self, prompts, *, seeds, options, **kwargs):
        from PIL import Image

        from atelier.shapes.parse import parse_prompt
        from atelier.shapes.render import render
        from atelier.shapes.scene import realize

        out = []
        for p, s in zip(prompts, seeds):
            if self.good(p):
                out.append(
                    Image.fromarray(render(realize(parse_prompt(p), np.random.default_rng(s)), 32))
                )
            else:
                out.append(Image.new("RGB", (32, 32), (255, 255, 255)))
        return out


def pixels(x):
    return x.flatten(1)[:, ::16]


def test_a_better_entrant_wins_alignment_and_fidelity():
    suite = [bp for bp in load_suite() if bp.category == "single_object"][:12]
    renders = Fixed(lambda p: True)([bp.prompt for bp in suite * 2], seeds=range(24), options=None)
    real = torch.stack([array_to_tensor(np.asarray(im)) for im in renders])
    good = Entrant("good", Fixed(lambda p: True), None)
    half = Entrant("half", Fixed(lambda p: "red" in p or "blue" in p), None)
    blank = Entrant("blank", Fixed(lambda p: False), None)
    arena = ArenaSuite("shapes-bench", suite, shapes_judge, pixels, real, "renders")
    result = run_arena([good, half, blank], arena, seeds=[0, 1], n_boot=50, progress=False)
    assert result.accuracy["good"] == 1.0 and result.accuracy["blank"] == 0.0
    elo = {n: r.elo for n, r in result.ratings["alignment"].items()}
    assert elo["good"] > elo["half"] > elo["blank"]
    assert result.win_rates["alignment"]["good vs blank"]["all"] == 1.0
    assert result.ratings["fidelity"]["good"].elo > result.ratings["fidelity"]["blank"].elo
    for show in result.showings:  # the same (prompt, seed) jobs in the same order for everyone
        assert [(j.id, j.seed) for j in show.judged] == [
            (j.id, j.seed) for j in result.showings[0].judged
        ]  # noqa: E501
    page = arena_html(result)
    assert page.startswith("<!doctype html>") and page.count("<img") >= 3 * 4
    grid = arena_grid(result)  # a row per category's first job, a column per entrant
    categories = len({j.category for j in result.showings[0].judged})
    assert grid.width > 3 * 128 and grid.height > categories * 128
    with pytest.raises(ValueError, match="at least two"):
        run_arena([good], arena, seeds=[0])


def test_compare_command_writes_json_and_html(tiny_model_dir, second_tiny_model_dir, clip_dir,
                                              tmp_path):  # fmt: skip
    result = CliRunner().invoke(
        app, ["compare", str(tiny_model_dir), str(second_tiny_model_dir), "--every", "56",
              "--set", f"{second_tiny_model_dir}:steps=2", "--features", str(clip_dir),
              "--real", "16", "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "arena.json").read_text())
    assert report["entrants"][str(second_tiny_model_dir)]["steps"] == 2
    assert report["n_prompts"] == 6 and set(report["ratings"]) == {"alignment", "fidelity"}
    assert (tmp_path / "arena.html").read_text().count("<img") >= 2
    assert (tmp_path / "arena-grid.png").is_file()
    args = ["compare", str(tiny_model_dir), str(second_tiny_model_dir), "--set", "other:steps=2"]
    bad = CliRunner().invoke(app, [*args, "--features", str(clip_dir)])
    assert bad.exit_code == 2 and "MODEL:key=value" in bad.output
    one = CliRunner().invoke(app, ["compare", str(tiny_model_dir)])
    assert one.exit_code == 2 and "at least two" in one.output
