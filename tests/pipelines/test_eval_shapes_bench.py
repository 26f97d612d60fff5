"""shapes-bench scoring: summaries, bootstrap intervals, and the eval command on a tiny model."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from atelier.cli import app
from atelier.eval.shapes_bench import (
    Judged,
    bootstrap,
    miss_breakdown,
    missing_objects,
    paired_difference,
    summarize,
)


def judged(category, split, pid, passed, seed=0):
    return Judged(pid, "p", category, split, seed, passed, ())


def test_summary_groups_and_overall():
    rows = [
        judged("counting", "seen", "a", True),
        judged("counting", "seen", "b", False),
        judged("counting", "held_out", "c", True),
        judged("position", "seen", "d", True),
    ]
    table = summarize(rows)
    assert table["counting"]["seen"].accuracy == 0.5
    assert table["counting"]["held_out"].accuracy == 1.0
    assert table["overall"]["seen"].accuracy == 2 / 3
    assert table["overall"]["all"].images == 4


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap([[bool(x)] for x in rng.random(20) < 0.7])
    large = bootstrap([[bool(x)] for x in rng.random(2000) < 0.7])
    for a in (small, large):
        assert a.low <= a.accuracy <= a.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert abs(large.accuracy - 0.7) < 0.03
    assert bootstrap([[True]] * 10).low == 1.0


def test_paired_difference_is_per_prompt_and_matches_the_normal_interval():
    def runs(**passes):  # prompt id -> pass (1) or fail (0) for seeds 0, 1, ...
        return [judged("size", "seen", p, bool(int(x)), s)
                for p, xs in passes.items() for s, x in enumerate(xs)]  # fmt: skip

    # Prompt a: 0/2 -> 2/2 (+1); b: 1/2 -> 1/2 (0); c: 2/2 -> 1/2 (-0.5); mean +1/6. The pairs
    # are matched by (prompt, seed), not by order.
    before = runs(a="00", b="10", c="11")
    after = runs(a="11", b="01", c="01")[::-1]
    table = paired_difference(before, after)
    assert table["size"]["seen"].accuracy == table["overall"]["all"].accuracy
    assert abs(table["overall"]["all"].accuracy - 1 / 6) < 1e-12
    assert paired_difference(after, before)["overall"]["all"].accuracy == -1 / 6
    # Many prompts: the percentile interval matches mean +- 1.96 standard errors (scipy).
    rng = np.random.default_rng(1)
    n = 3000
    x, y = rng.random(n) < 0.5, rng.random(n) < 0.6
    big = paired_difference(
        [judged("c", "seen", str(i), bool(x[i])) for i in range(n)],
        [judged("c", "seen", str(i), bool(y[i])) for i in range(n)],
    )
    d = y.astype(float) - x.astype(float)
    half = 1.96 * stats.sem(d)
    got = big["overall"]["all"]
    assert abs(got.accuracy - d.mean()) < 1e-12
    assert abs((got.high - got.low) / 2 - half) < 0.1 * half
    with pytest.raises(ValueError, match="1 .prompt, seed. pairs only in the first"):
        paired_difference(before, after[:-1])


def test_eval_diff_command(tiny_model_dir, tmp_path):
    def run_eval(out, *extra):
        result = CliRunner().invoke(app, ["eval", str(tiny_model_dir), "--steps", "2", "-o",
                                          str(out), "--no-metrics", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        return next(x for x in result.stdout.splitlines() if x.endswith(".json"))

    a = run_eval(tmp_path / "a", "--limit", "3")
    b = run_eval(tmp_path / "b", "--limit", "3", "--guidance-rescale", "0.7")
    assert "-r0.7" in b
    result = CliRunner().invoke(app, ["eval-diff", a, b])
    assert result.exit_code == 0, result.output
    assert "3 paired images" in result.output and "rescale 0.7" in result.output
    assert "overall difference" in result.output
    short = run_eval(tmp_path / "c", "--limit", "2")
    for args, message in [
        ([a, short], "judged different images"),
        ([a, str(tmp_path / "none.json")], "no eval JSON"),
        ([a, str(tiny_model_dir / "config.json")], "not an `atelier eval` JSON"),
    ]:
        result = CliRunner().invoke(app, ["eval-diff", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_missing_objects_says_what_was_drawn_instead():
    from atelier.shapes.judge import FoundObject
    from atelier.shapes.world import ObjectSpec, SceneSpec

    def found(color, shape):
        return FoundObject(color, shape, "small", (1, 1), 0.2, 0.5, 0.5, 0.8, 0.0)

    spec = SceneSpec((ObjectSpec("red", "circle"), ObjectSpec("blue", "square"),
                      ObjectSpec("green", "triangle"), ObjectSpec("yellow", "circle")))  # fmt: skip
    drawn = [
        found("red", "square"),  # the red circle borrowed the blue square's shape
        found("blue", "square"),
        found("cyan", "triangle"),  # the green triangle came out cyan
        # the yellow circle is absent
    ]
    # In (colour, shape) order: green triangle, red circle, yellow circle.
    assert missing_objects(spec, drawn) == ("wrong colour", "wrong shape, borrowed", "absent")
    # A shape the prompt never asks for is a plain shape error, not a borrowed one.
    only = SceneSpec((ObjectSpec("red", "circle"),))
    assert missing_objects(only, [found("red", "square")]) == ("wrong shape",)
    assert missing_objects(only, [found("red", "circle")]) == ()
    rows = [replace(judged("c", "seen", "a", False), misses=("wrong shape", "absent")),
            replace(judged("c", "seen", "b", False), misses=("wrong shape",))]  # fmt: skip
    assert miss_breakdown(rows) == (
        "asked objects missing: 3 (wrong shape, borrowed 0, wrong shape 2, wrong colour 0, "
        "absent 1)"
    )


def test_eval_command_writes_json(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(
        app, ["eval", str(tiny_model_dir), "--limit", "3", "--steps", "2", "-o", str(tmp_path),
              "--no-metrics"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files = list(tmp_path.glob("*.json"))
    report = json.loads(files[0].read_text())
    assert len(report["images"]) == 3
    assert all("misses" in image for image in report["images"])
    assert "asked objects missing: " in result.output
    assert set(report["accuracy"]["overall"]) >= {"seen", "all"}


def test_card_section_is_replaced_not_duplicated():
    from atelier.kinds.card import replace_section

    card = "# m\n\nintro\n\n## Recipe\n\nx\n"
    once = replace_section(card, "## shapes-bench\n\nA\n")
    twice = replace_section(once, "## shapes-bench\n\nB\n")
    assert twice.count("## shapes-bench") == 1 and "B" in twice and "A\n" not in twice
    assert "## Recipe" in twice
    middle = replace_section(
        "# m\n\n## shapes-bench\n\nold\n\n## Recipe\n\nx\n", "## shapes-bench\n\nnew\n"
    )
    assert middle == "# m\n\n## shapes-bench\n\nnew\n\n## Recipe\n\nx\n"


def test_eval_report_has_metrics_floors_and_a_graded_grid(
    tiny_model_dir, clip_dir, features_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    args = ["eval", str(tiny_model_dir), "--limit", "6", "--steps", "2", "-o", str(tmp_path),
            "--clip-model", str(clip_dir), "--features", str(features_dir)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [m["n"] for m in report["distribution"]] == [6, 6]
    for m in report["distribution"]:
        assert m["fid_floor"] >= 0 and m["fid"] >= 0 and 0 <= m["precision"] <= 1
    assert 0 <= report["clip_score"]["generated"] <= 100
    page = next(tmp_path.glob("*.html")).read_text()
    assert (
        page.count("<img") == 6
        and "FID floor" in page
        and page.count('class="pass"') + page.count('class="fail"') == 6
    )
    # The labelled grid: tiles enlarged to 128 px at least, under their prompts.
    grid = Image.open(next(tmp_path.glob("*-grid.png")))
    assert grid.width > 128 and grid.height > 128
    cached = list((tmp_path / "home" / "cache" / "features").glob("*.safetensors"))
    assert len(cached) == 2  # reference features cached per extractor and dataset
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "FID" in again.output
    missing = CliRunner().invoke(app, [*args[:-4], "--clip-model", "nope", "--features", "nope"])
    assert missing.exit_code == 0 and "FID/KID skipped" in missing.output


def test_eval_refuses_an_image_count_over_the_budget_before_loading(tmp_path):
    # A fuzzed --samples once built a job list of 10^20 entries (MemoryError); the model
    # named here does not exist, so reaching the loader would fail differently.
    refusals = ((["--samples", "99999999999999999999"], "over the limit of 10,000 images"),
                (["--seed", "-1"], "seed"))  # fmt: skip
    for extra, message in refusals:
        result = CliRunner().invoke(app, ["eval", "no-such-model", "-o", str(tmp_path / "e"),
                                          *extra])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "e").exists()
