"""Token models (DALL-E and MaskGIT kinds) through every generation surface: `atelier generate`
with seeds, options and PNG parameters, `replay` (pixels match), `inspect`, `export`; a batch
gives the same images as single runs, bit for bit; long prompts warn; a folder whose tokenizer
does not match its transformer is refused clearly. The tiny models are ``token_models.py``'s;
the ``installed`` fixture (both by name) is conftest's."""

import json
import shutil
import time
import warnings

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.registry import describe, load_model, load_text_to_image
from atelier.kinds.token_model import save_token_model
from atelier.kinds.tokenizer import save_tokenizer
from atelier.pipelines.metadata import read_params
from atelier.serve.app import ServeSettings, create_app
from atelier.text.window import PromptTruncatedWarning
from tests.pipelines.token_models import tiny_token_model, tiny_tokenizer


@pytest.mark.parametrize(
    "kind, options, shown",
    [
        ("dalle", ["temperature=0.9", "top_k=8", "top_p=0.95"], "Top k: 8"),
        ("maskgit", ["steps=6", "temperature=0.8", "schedule=linear"], "Steps: 6"),
    ],
)
def test_generate_replay_inspect_export(installed, tmp_path, kind, options, shown):
    runner = CliRunner()
    out = tmp_path / "out"
    name = f"tiny-{kind}"
    args = ["generate", "a red circle", "--model", name, "-o", str(out), "--seed", "3",
            "-n", "2", "--guidance", "2"]  # fmt: skip
    for option in options:
        args += ["--option", option]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    paths = sorted(out.glob("*.png"))
    assert len(paths) == 2
    params = read_params(paths[0])
    assert params.model == name and params.seed in (3, 4) and params.options["guidance"] == 2.0
    assert shown in Image.open(paths[0]).text["parameters"]
    assert Image.open(paths[0]).size == (16, 16)
    pixels = [np.asarray(Image.open(p)) for p in paths]
    assert not np.array_equal(*pixels)  # two seeds, two images
    replay = runner.invoke(app, ["replay", str(paths[1])])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
    shown = runner.invoke(app, ["inspect", name])
    title = {"dalle": "autoregressive token transformer (DALL-E)",
             "maskgit": "masked token transformer (MaskGIT)"}[kind]  # fmt: skip
    assert shown.exit_code == 0 and f"{title}, 4x4 tokens of 32 (kind '{kind}')" in shown.output
    assert "temperature (float): 1.0" in shown.output and "image_tokenizer" in shown.output
    half = tmp_path / "half"
    exported = runner.invoke(app, ["export", name, "-o", str(half), "--half", "--guidance", "1.5",
                                   "--name", "renamed", "-O", "temperature=0.75"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    again = load_text_to_image(half)
    assert again.name == "renamed" and again.defaults.guidance == 1.5
    assert again.defaults.temperature == 0.75
    refused = runner.invoke(app, ["export", name, "-o", str(tmp_path / "x"), "-O", "sampler=euler"])
    assert refused.exit_code == 2 and "takes no sampler option" in refused.output
    assert not (tmp_path / "x").exists()
    assert describe(half).facts.text_to_image and (half / "tokenizer" / "config.json").is_file()


def test_options_a_kind_does_not_take_are_refused(installed, tmp_path):
    runner = CliRunner()
    for model, args, problem in (
        ("tiny-dalle", ["--steps", "5"], "tiny-dalle takes no steps option; its options: "
                                         "temperature, top_k, top_p, guidance"),
        ("tiny-maskgit", ["--option", "top_k=3"], "tiny-maskgit takes no top_k option"),
        ("tiny-maskgit", ["--option", "schedule=zigzag"], "unknown schedule 'zigzag'"),
        ("tiny-dalle", ["--option", "top_p=2"], "top_p must be in (0, 1], got 2.0"),
        ("tiny-dalle", ["--size", "32"], "size 32 cannot be made by this model"),
    ):  # fmt: skip
        result = runner.invoke(app, ["generate", "x", "--model", model, *args,
                                     "-o", str(tmp_path / "o")])  # fmt: skip
        assert result.exit_code == 2 and problem in result.output, (args, result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["dalle", "maskgit"])
def test_a_batch_gives_the_same_images_as_single_runs(kind):
    model = tiny_token_model(kind)
    prompts = ["a red circle", "three yellow circles", "a blue square", "", "a red circle"]
    seeds = [5, 6, 7, 8, 9]
    options = model.defaults
    # Five images cross a chunk boundary of the DALL-E pipeline's four rows.
    batch = model(prompts, seeds=seeds, options=options)
    for prompt, seed, image in zip(prompts, seeds, batch):
        (alone,) = model([prompt], seeds=[seed], options=options)
        assert np.array_equal(np.asarray(alone), np.asarray(image))
    assert not np.array_equal(np.asarray(batch[0]), np.asarray(batch[4]))  # seeds differ
    assert model([], seeds=[]) == []
    steps = []
    model(prompts[:2], seeds=seeds[:2], callback=steps.append)
    assert steps[-1].i + 1 == steps[-1].total == len(steps)


def test_a_prompt_longer_than_the_window_warns():
    model = tiny_token_model("dalle")
    long = "a red circle above a blue square " * 4
    with pytest.warns(PromptTruncatedWarning, match="the window holds 8"):
        model([long], seeds=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(["a red circle"], seeds=[0])


def test_a_tokenizer_that_does_not_match_the_transformer_is_refused(tmp_path):
    folder = save_token_model(tiny_token_model("maskgit"), tmp_path / "m", card="# m\n")
    shutil.rmtree(folder / "tokenizer")
    save_tokenizer(tiny_tokenizer(codebook_size=16), folder / "tokenizer", card="# other\n")
    with pytest.raises(
        ValueError,
        match="has a codebook of 16 codes but the transformer "
        "predicts 32: a token model needs the tokenizer",
    ):
        load_model(folder)
    result = CliRunner().invoke(app, ["generate", "x", "--model", str(folder),
                                      "-o", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2 and "has a codebook of 16 codes" in result.output
    config = json.loads((folder / "config.json").read_text())
    config["transformer"]["text_vocab"] = 7
    (folder / "config.json").write_text(json.dumps(config))
    shutil.rmtree(folder / "tokenizer")
    save_tokenizer(tiny_tokenizer(), folder / "tokenizer", card="# tok\n")
    with pytest.raises(ValueError, match="the text tokenizer in .* has \\d+ ids but the "
                                         "transformer embeds 7"):  # fmt: skip
        load_model(folder)


def test_the_api_lists_them_and_generates_with_their_options(installed, tmp_path):
    client = TestClient(create_app(ServeSettings(model="tiny-maskgit", output=tmp_path / "s")))
    listed = {m["name"]: m for m in client.get("/v1/models").json()}
    assert listed["tiny-dalle"]["kind"] == "dalle" and listed["tiny-maskgit"]["kind"] == "maskgit"
    names = [o["name"] for o in listed["tiny-dalle"]["options"]]
    assert names == ["temperature", "top_k", "top_p", "guidance"]
    bad = client.post("/v1/txt2img", json={"prompt": "x", "model": "tiny-dalle", "steps": 4})
    assert bad.status_code == 422 and "tiny-dalle takes no steps option" in json.dumps(bad.json())
    good = client.post(
        "/v1/txt2img",
        json={
            "prompt": "a red circle",
            "model": "tiny-maskgit",
            "options": {"steps": 3, "temperature": 0.5},
        },
    )
    assert good.status_code == 202, good.json()
    for _ in range(400):
        view = client.get(good.json()["status_url"]).json()
        if view["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert view["status"] == "done", view
    assert "Steps: 3" in view["images"][0]["parameters"]
