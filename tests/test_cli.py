"""The ``atelier`` command: help, shapes render / judge / dataset / bench, and clear errors."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0 and "shapes" in result.output
    result = run("shapes", "--help")
    for command in ("render", "judge", "dataset", "bench", "floor"):
        assert command in result.output


def test_render_then_judge(tmp_path):
    out = tmp_path / "x.png"
    result = run(
        "shapes",
        "render",
        "a red circle above a blue square",
        "-o",
        str(out),
        "--size",
        "128",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (128, 128)
    ok = run("shapes", "judge", str(out), "--prompt", "a red circle above a blue square")
    assert ok.exit_code == 0 and "PASS" in ok.output and "red circle" in ok.output
    bad = run("shapes", "judge", str(out), "--prompt", "a blue square above a red circle")
    assert bad.exit_code == 1 and "FAIL" in bad.output and "not above" in bad.output


@pytest.mark.parametrize(
    "prompt",
    [
        "a cyan triangle next to a red square",
        "a single blue triangle",
        "exactly three purple squares",
        "a pair of green circles",
        "a red circle underneath a blue square",
    ],
)
def test_render_then_judge_paraphrases(tmp_path, prompt):
    out = tmp_path / "x.png"
    result = run("shapes", "render", prompt, "-o", str(out), "--seed", "1")
    assert result.exit_code == 0, result.output
    judged = run("shapes", "judge", str(out), "--prompt", prompt)
    assert judged.exit_code == 0 and "PASS" in judged.output, judged.output


def test_judge_next_to_fails_when_stacked(tmp_path):
    out = tmp_path / "x.png"
    stacked = "a cyan triangle in the top and a red square in the bottom"  # one column
    assert run("shapes", "render", stacked, "-o", str(out)).exit_code == 0
    result = run("shapes", "judge", str(out), "--prompt", "a cyan triangle next to a red square")
    assert result.exit_code == 1 and "not beside the red square" in result.output


def test_render_same_seed_same_image(tmp_path):
    for name in ("a.png", "b.png"):
        assert (
            run("shapes", "render", "three green triangles", "-o", str(tmp_path / name)).exit_code
            == 0
        )
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize(
    "args,message",
    [
        (("shapes", "render", "a red hexagon", "-o", "x.png"), "unknown word 'hexagon'"),
        (
            ("shapes", "render", "a red circle behind a blue square", "-o", "x.png"),
            "unknown word 'behind'",
        ),
        (
            ("shapes", "render", "a red circle", "-o", "x.png", "--size", "50"),
            "--size must be one of",
        ),
        (("shapes", "judge", "missing.png", "--prompt", "a red circle"), "no image file"),
        (("shapes", "dataset", "-o", "d", "--split", "test"), "--split must be"),
    ],
)
def test_errors_are_clear(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_judge_rejects_a_non_image(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    result = run("shapes", "judge", str(junk), "--prompt", "a red circle")
    assert result.exit_code == 2 and "cannot use" in result.output
    from PIL import Image

    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    result = run("shapes", "judge", str(tmp_path / "bomb.png"), "--prompt", "a red circle")
    assert result.exit_code == 2 and "too_large" in result.output


def test_dataset_writes_imagefolder(tmp_path):
    result = run("shapes", "dataset", "--n", "5", "--size", "32", "-o", str(tmp_path / "ds"))
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (tmp_path / "ds" / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and all({"file_name", "text", "spec"} <= set(x) for x in lines)
    assert all((tmp_path / "ds" / x["file_name"]).is_file() for x in lines)
    again = run("shapes", "dataset", "--n", "5", "-o", str(tmp_path / "ds"))
    assert again.exit_code == 2 and "already holds a dataset" in again.output


def test_bench_matches_committed_suite():
    result = run("shapes", "bench")
    assert result.exit_code == 0 and "identical to the committed suite: True" in result.output
