"""Token models (DALL-E and MaskGIT kinds) through every generation surface: `atelier generate`
with seeds, options and PNG parameters, `replay` (pixels match), `inspect`, `export`; a batch
gives the same images as single runs, bit for bit; long prompts warn; a folder whose tokenizer
does not match its transformer is refused clearly. The same for transformers reading the frozen
MiniLM by cross-attention: their folders name the encoder and round trip, guidance's
unconditional rows are the encoder's states of the negative prompt, and a folder written before
the choice existed loads as the prefix model it is. The tiny models are ``token_models.py``'s;
the ``installed`` fixture (both by name) is conftest's."""

import json
import shutil
import time
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
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
from tests.pipelines.token_models import MINILM, tiny_token_model, tiny_tokenizer


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
@pytest.mark.parametrize("text", ["prefix", "cross_attention"])
def test_a_batch_gives_the_same_images_as_single_runs(kind, text):
    model = tiny_token_model(kind, text=text)
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


@pytest.mark.parametrize("text", ["prefix", "cross_attention"])
def test_a_prompt_longer_than_the_window_warns(text):
    model = tiny_token_model("dalle", text=text)
    long = "a red circle above a blue square " * 4
    with pytest.warns(PromptTruncatedWarning, match="the window holds 8"):
        model([long], seeds=[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(["a red circle"], seeds=[0])


@pytest.mark.parametrize("kind", ["dalle", "maskgit"])
def test_a_cross_attention_folder_names_its_encoder_and_round_trips(kind, tmp_path, monkeypatch):
    model = tiny_token_model(kind, text="cross_attention")
    folder = tmp_path / "home" / "models" / model.name
    save_token_model(model, folder, card=f"# {model.name}\n")
    config = json.loads((folder / "config.json").read_text())
    assert config["transformer"]["text_conditioning"] == "cross_attention"
    assert config["text_encoder"] == {**config["text_encoder"], "kind": "minilm",
                                      "hidden_layer": -2}  # fmt: skip
    assert not (folder / "text_tokenizer").exists()  # MiniLM comes from its package
    loaded = load_text_to_image(folder)
    assert loaded.text_tokenizer is None and loaded.text_encoder_config == MINILM
    assert loaded.model_hash == model.model_hash
    prompts, seeds = ["a red circle", "three yellow circles"], [1, 2]
    options = replace(model.defaults, guidance=2.0)
    for a, b in zip(model(prompts, seeds=seeds, options=options),
                    loaded(prompts, seeds=seeds, options=options)):  # fmt: skip
        assert np.array_equal(np.asarray(a), np.asarray(b))
    title = describe(folder).facts.title
    assert title.endswith("4x4 tokens of 32, reading minilm states by cross-attention")
    # The hash follows the layer read: another layer is another model.
    other = replace(model, text_encoder_config=replace(MINILM, hidden_layer=-1))
    assert other.model_hash != model.model_hash
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", "a red circle", "--model", model.name, "-o", str(out),
                                 "--seed", "3", "--guidance", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (png,) = out.glob("*.png")
    replay = runner.invoke(app, ["replay", str(png)])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
    shown = runner.invoke(app, ["inspect", model.name])
    assert shown.exit_code == 0 and "text_encoder" in shown.output, shown.output


@pytest.mark.parametrize("negative", ["", "a blue square"])
def test_guidance_reads_the_encoders_states_of_the_negative_prompt(negative):
    model = tiny_token_model("dalle", text="cross_attention")
    seen = []
    start = model.network.start
    model.network.start = lambda text: seen.append(text) or start(text)
    options = replace(model.defaults, guidance=3.0)
    model(["a red circle"], seeds=[0], negative_prompt=negative, options=options)
    (text,) = seen
    rows = model.family.rows
    expected = model.text_encoder.encode([negative])
    assert len(text) == 2 * rows
    assert torch.equal(text.states[rows:], expected.states.expand(rows, -1, -1))
    assert torch.equal(text.mask[rows:], expected.mask.expand(rows, -1))
    if not negative:  # the empty caption's are the null states the model was trained on
        assert text.states[rows:].abs().sum() == 0 and text.mask[rows:].sum() == rows


def test_a_folder_written_before_the_choice_loads_as_a_prefix_model(tmp_path):
    model = tiny_token_model("maskgit")
    folder = save_token_model(model, tmp_path / "old", card="# old\n")
    config = json.loads((folder / "config.json").read_text())
    for field in ("text_conditioning", "context_dim"):
        del config["transformer"][field]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = load_model(folder)
    assert loaded.network.config.text_conditioning == "prefix"
    assert loaded.model_hash == model.model_hash
    (a,), (b,) = model(["a red circle"], seeds=[4]), loaded(["a red circle"], seeds=[4])
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_folder_that_cannot_give_its_transformer_the_text_it_reads_is_refused(tmp_path):
    folder = save_token_model(tiny_token_model("dalle", text="cross_attention"), tmp_path / "x",
                              card="# x\n")  # fmt: skip
    original = json.loads((folder / "config.json").read_text())

    def refused(change, message):
        config = json.loads(json.dumps(original))
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=message):
            load_model(folder)

    refused(lambda c: c["text_encoder"].update(kind="transformer"),
            "names a 'transformer' text encoder, but a token model's cross-attention reads a "
            "frozen one")  # fmt: skip
    refused(lambda c: c["text_encoder"].update(max_length=12),
            "gives 12 states of 384 but the transformer reads 10 of 384")  # fmt: skip
    refused(lambda c: c.pop("text_encoder"), "not a valid dalle config")
    prefix = save_token_model(tiny_token_model("dalle"), tmp_path / "p", card="# p\n")
    config = json.loads((prefix / "config.json").read_text())
    config["text_encoder"] = original["text_encoder"]
    (prefix / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="text_encoder is for a transformer with "
                                         "text_conditioning 'cross_attention'"):  # fmt: skip
        load_model(prefix)


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


@pytest.mark.parametrize("kind", ["dalle", "maskgit"])
def test_clip_reranks_a_token_models_candidates(installed, clip_dir, tmp_path, kind):
    """DALL-E's reranking: N candidates per image, CLIP keeps the best; the PNG records the kept
    candidate's own seed (so replay redraws it) and the CLIP score that chose it."""
    runner = CliRunner()
    out = tmp_path / "ranked"
    args = ["generate", "a red circle", "--model", f"tiny-{kind}", "-o", str(out), "--seed", "2",
            "--candidates", "4", "--rerank", "clip", "--clip-model", str(clip_dir)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.png")
    params = read_params(path)
    assert params.extra["candidates"] == 4 and params.extra["requested_seed"] == 2
    assert isinstance(params.extra["clip_score"], float)
    replay = runner.invoke(app, ["replay", str(path)])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
