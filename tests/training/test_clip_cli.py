"""`atelier train shapes-clip` end to end on tiny overrides, then the `atelier clip` commands."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.card import cpu_hours_in_card
from atelier.shapes.parse import parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import realize

TINY = [
    "data.n=32",
    "train.batch_size=8",
    "train.max_steps=3",
    "train.checkpoint_every=2",
    "train.sample_every=2",
    "train.log_every=1",
    "train.warmup_steps=0",
    "clip.vision.width=32",
    "clip.vision.layers=1",
    "clip.vision.heads=2",
    "clip.embed_dim=16",
    "text_encoder.width=32",
    "text_encoder.layers=1",
    "text_encoder.heads=2",
]


def test_train_then_classify_score_and_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    runner = CliRunner()
    # --install: the commands below use it as the default CLIP, shapes-clip.
    result = runner.invoke(app, ["train", "shapes-clip", *TINY, "--install"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "models" / "shapes-clip"
    assert (folder / "clip.safetensors").is_file() and (folder / "text_encoder").is_dir()
    card = (folder / "README.md").read_text()
    assert "zero-shot accuracy" in card and "image_to_text_R@1" in card
    probes = [
        json.loads(x)
        for x in (tmp_path / "runs" / "shapes-clip" / "samples" / "samples.jsonl")
        .read_text()
        .splitlines()
    ]  # noqa: E501
    assert [p["step"] for p in probes] == [2] and 0 <= probes[0]["zero_shot"] <= 1

    image = tmp_path / "x.png"
    Image.fromarray(
        render(realize(parse_prompt("a red circle"), np.random.default_rng(0)), 64)
    ).save(image)  # noqa: E501
    out = runner.invoke(
        app, ["clip", "classify", str(image), "--labels", "a red circle,a blue square"]
    )
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 2 and abs(sum(float(x.split()[0]) for x in lines) - 1) < 2e-3
    out = runner.invoke(app, ["clip", "score", str(image), "--prompt", "a red circle"])
    assert out.exit_code == 0 and 0 <= float(out.output) <= 100
    out = runner.invoke(app, ["clip", "eval", "--per-class", "1", "--scenes", "20"])
    assert out.exit_code == 0, out.output
    assert "zero-shot accuracy" in out.output and "text_to_image_R@1" in out.output
    assert "pooling mean" in out.output and "swap_colors" in out.output
    assert "colours swapped between two shapes (90 caption pairs)" in out.output
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"not a png")
    out = runner.invoke(app, ["clip", "score", str(garbage), "--prompt", "a red circle"])
    assert out.exit_code == 2 and "cannot use" in out.output
    out = runner.invoke(app, ["clip", "score", str(image), "--prompt", "  "])
    assert out.exit_code == 2 and "empty" in out.output


def test_bad_inputs_name_the_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    runner = CliRunner()
    out = runner.invoke(
        app, ["clip", "classify", "nope.png", "--labels", "a,b", "--model", "missing"]
    )
    assert out.exit_code == 2 and "no model at 'missing'" in out.output
    out = runner.invoke(app, ["clip", "classify", "nope.png", "--labels", "a red circle"])
    assert out.exit_code == 2 and "at least two" in out.output


def test_fine_tune_with_hard_negatives(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["train", "shapes-clip", *TINY]).exit_code == 0
    base = tmp_path / "models" / "shapes-clip-local"  # beside the shipped shapes-clip
    card = (base / "README.md").read_text()
    line = re.search(r"Training CPU time: [^\n]*", card)[0]
    (base / "README.md").write_text(card.replace(line, "Training CPU time: 1.27 h"))
    result = runner.invoke(
        app, ["train", "shapes-clip-neg", *TINY, f"init_from={base}", "data.hard_negatives=2"]
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "shapes-clip-neg" / "log.jsonl").read_text().splitlines()
    log = [json.loads(x) for x in lines]
    assert all(0 <= row["negative_won"] <= 1 for row in log if "loss" in row)
    card = (tmp_path / "models" / "shapes-clip-neg" / "README.md").read_text()
    assert "from " + str(base) in card and "hard negative" in card and "swap_colors" in card
    # The fine-tune's card counts its base's CPU time too, as a diffusion fine-tune's does (the
    # base's card was given a cost that a tiny run never has, so 0.00 + 0.00 cannot pass).
    own = float(re.search(r"\(image and text towers\): ([0-9.]+) CPU-h", card)[1])
    assert f"the model it fine-tunes, {base}: 1.27 CPU-h" in card
    assert cpu_hours_in_card(tmp_path / "models" / "shapes-clip-neg") == pytest.approx(
        1.27 + own, abs=0.011
    )

    # Another architecture than the recipe's, a non-CLIP recipe, a folder: one-line errors.
    out = runner.invoke(app, ["train", "shapes-clip-neg", *TINY, f"init_from={base}",
                              "clip.embed_dim=8", "--out", str(tmp_path / "r2")])  # fmt: skip
    assert out.exit_code == 2 and "another architecture" in out.output
    out = runner.invoke(app, ["train", "shapes-vae", "data.hard_negatives=2"])
    assert out.exit_code == 2 and "contrastive (CLIP) recipes" in out.output
    out = runner.invoke(app, ["train", "shapes-clip-neg", "init_from=nowhere", *TINY,
                              "--out", str(tmp_path / "r3")])  # fmt: skip
    assert out.exit_code == 2 and "init_from=nowhere" in out.output


def test_bind_recipe_trains_from_scratch_with_negatives_and_eos_pooling(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "shapes-clip-bind", *TINY, "data.hard_negatives=2"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "shapes-clip-bind" / "log.jsonl").read_text().splitlines()
    log = [json.loads(x) for x in lines]
    assert any("negative_won" in row for row in log)  # hard negatives from the first step
    folder = tmp_path / "models" / "shapes-clip-bind-local"  # it ships: a run installs beside it
    config = json.loads((folder / "config.json").read_text())
    assert config["text_encoder"]["pooling"] == "eos"
    assert json.loads((folder / "text_encoder" / "config.json").read_text())["pooling"] == "eos"
    card = (folder / "README.md").read_text()
    assert "from scratch" in card and "swap_colors" in card and "colour-swapped twin" in card
    out = runner.invoke(app, ["clip", "eval", str(folder), "--per-class", "1", "--scenes", "20"])
    assert out.exit_code == 0, out.output
    assert "pooling eos" in out.output and "swap_colors" in out.output
    assert "zero-shot accuracy" in out.output
    # A fine-tune keeps its base's text tower: another pooling is refused, not written down.
    out = runner.invoke(app, ["train", "shapes-clip-neg", *TINY, f"init_from={folder}",
                              "--out", str(tmp_path / "r2")])  # fmt: skip
    assert out.exit_code == 2 and "another text tower" in out.output
