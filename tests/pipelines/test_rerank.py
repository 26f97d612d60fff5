"""Reranking: candidate seeds, CLIP's choice, and the generate/eval options around it."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.base import array_to_tensor
from atelier.eval.clip_metrics import clip_scorer, clip_scores
from atelier.kinds.registry import load_model
from atelier.pipelines.metadata import read_params
from atelier.pipelines.rerank import CANDIDATE_STRIDE, RerankedText2Image, candidate_seeds


def test_candidate_seeds_start_at_the_plain_seed():
    assert candidate_seeds(7, 3) == [7, 7 + CANDIDATE_STRIDE, 7 + 2 * CANDIDATE_STRIDE]
    with pytest.raises(ValueError, match="at least 1"):
        candidate_seeds(0, 0)


def test_choice_is_clips_favourite_and_regenerates_from_its_seed(tiny_model_dir, clip_dir):
    from atelier.kinds.clip import load_clip

    model, clip = load_model(tiny_model_dir), load_clip(clip_dir)
    pipe = model.pipeline()
    options = model.config.defaults
    reranked = RerankedText2Image(pipe, clip_scorer(clip), 3)
    prompts = ["a red circle", "two blue squares"]
    choices = reranked.choose(prompts, seeds=[5, 9], options=options)
    for prompt, seed, choice in zip(prompts, [5, 9], choices):
        assert choice.seed in candidate_seeds(seed, 3)
        alone = pipe([prompt], seeds=[choice.seed], options=options)[0]
        np.testing.assert_array_equal(np.asarray(alone), np.asarray(choice.image))
        assert choice.score == max(choice.scores)
        x = array_to_tensor(np.asarray(alone))[None]
        # Scored alone, not among its candidates: float32 rounding, scaled by 100 * cos.
        assert clip_scores(clip, x, [prompt]).item() == pytest.approx(choice.score, rel=1e-5)
    plain = RerankedText2Image(pipe, None, 1)(prompts, seeds=[5, 9], options=options)
    direct = pipe(prompts, seeds=[5, 9], options=options)
    for a, b in zip(plain, direct):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="needs a scorer"):
        RerankedText2Image(pipe, None, 2)


def test_generate_with_rerank_records_the_kept_seed(
    tiny_installed, tiny_model_dir, clip_dir, tmp_path
):
    runner = CliRunner()
    args = ["generate", "a red circle", "--model", str(tiny_model_dir), "-o", str(tmp_path),
            "--candidates", "2", "--rerank", "clip", "--clip-model", str(clip_dir)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = [str(p) for p in tmp_path.glob("*.png")]
    assert path in result.output
    params = read_params(path)
    assert params.seed in candidate_seeds(0, 2)
    assert params.extra["candidates"] == 2 and params.extra["requested_seed"] == 0
    assert Image.open(path).size == (32, 32)
    replay = runner.invoke(app, ["replay", path])
    assert replay.exit_code == 0 and "pixels match" in replay.output
    bad = runner.invoke(app, ["generate", "x", "--model", str(tiny_model_dir), "--candidates", "2"])
    assert bad.exit_code == 2 and "--rerank clip" in bad.output
    bad = runner.invoke(app, ["generate", "x", "--model", str(tiny_model_dir), "--candidates",
                              "2", "--rerank", "clip", "--clip-model", "nope"])  # fmt: skip
    assert bad.exit_code == 2 and "needs a CLIP model" in bad.output


def test_eval_with_rerank(tiny_model_dir, clip_dir, tmp_path):
    result = CliRunner().invoke(
        app, ["eval", str(tiny_model_dir), "--limit", "2", "--steps", "2", "-o", str(tmp_path),
              "--candidates", "2", "--rerank", "clip", "--clip-model", str(clip_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(next(tmp_path.glob("*rerank2.json")).read_text())
    assert report["candidates"] == 2 and len(report["images"]) == 2
