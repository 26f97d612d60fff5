"""The GAN kind through every generation surface: the folder's save/load round trip and float16
export, `atelier generate` with seeds, truncation and PNG parameters, `replay`, `inspect`, the
HTTP API; truncation 0 gives one image for every seed; a batch gives the same images as single
runs, bit for bit; `atelier interpolate` writes a GIF of the asked frames for a GAN and for a
diffusion model, and refuses a token model."""

import json
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.gan.options import GANOptions
from atelier.kinds.base import network_evaluations
from atelier.kinds.gan import GANModel, save_gan
from atelier.kinds.registry import describe, load_model, load_text_to_image
from atelier.models.gan_generator import FusionGenerator, GeneratorConfig
from atelier.pipelines.metadata import read_params
from atelier.serve.app import ServeSettings, create_app
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from tests.pipelines.test_token_generate import tiny_token_model

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles"] * 4
TEXT = TextEncoderConfig(kind="transformer", max_length=12, width=16, layers=1, heads=2)


def tiny_gan(name: str = "tiny-gan", attention: tuple[int, ...] = (8,)) -> GANModel:
    torch.manual_seed(0)
    encoder = build_text_encoder(TEXT, tokenizer=train_bpe(CAPTIONS, vocab_size=300))
    config = GeneratorConfig(resolution=16, z_dim=8, sentence_dim=16, word_dim=16, channels=4,
                             attention_resolutions=attention)  # fmt: skip
    generator = FusionGenerator(config)
    with torch.no_grad():  # far from the identity init, so the text and z both show
        for p in generator.parameters():
            p.normal_(0, 0.3)
    return GANModel(name, generator.eval(), encoder.eval(), TEXT, GANOptions())


def pixels(images):
    return [np.asarray(im) for im in images]


@pytest.fixture
def installed(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    model = tiny_gan()
    save_gan(model, tmp_path / "home" / "models" / model.name, card="# tiny-gan\n")
    return tmp_path / "home" / "models" / model.name


def test_the_folder_round_trips_and_exports_in_float16(tmp_path):
    model = tiny_gan()
    folder = save_gan(model, tmp_path / "g", card="# g\n")
    loaded = load_model(folder)
    assert isinstance(loaded, GANModel) and loaded.model_hash == model.model_hash
    prompts, seeds = ["a red circle", "three yellow circles"], [1, 2]
    before, after = pixels(model(prompts, seeds=seeds)), pixels(loaded(prompts, seeds=seeds))
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    facts = describe(folder).facts
    assert facts.title == "text-conditional GAN (DF-GAN), word attention at 8 px"
    assert facts.resolution == 16 and [o.name for o in facts.options] == ["truncation"]
    result = CliRunner().invoke(app, ["export", str(folder), "-o", str(tmp_path / "half"),
                                      "--half", "--name", "gan-half",
                                      "--option", "truncation=0.8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    full, half = (p / "generator.safetensors" for p in (folder, tmp_path / "half"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    again = load_text_to_image(tmp_path / "half")
    assert again.name == "gan-half" and again.defaults == GANOptions(0.8)
    options = GANOptions(0.8)
    (a,), (b,) = (pixels(m(prompts[:1], seeds=[1], options=options)) for m in (model, again))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 8  # float16 weights, float32 arithmetic


def test_a_text_encoder_of_other_widths_is_refused(tmp_path):
    folder = save_gan(tiny_gan(), tmp_path / "g", card="# g\n")
    config = json.loads((folder / "config.json").read_text())
    config["generator"]["sentence_dim"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="gives sentence vectors of 16 .* generator reads 24"):
        load_model(folder)


def test_truncation_zero_gives_the_same_image_for_every_seed():
    model = tiny_gan()
    zero = pixels(model(["a red circle"] * 4, seeds=[0, 1, 2, 3], options=GANOptions(0.0)))
    assert all(np.array_equal(zero[0], z) for z in zero[1:])
    full = pixels(model(["a red circle"] * 2, seeds=[0, 1]))
    assert not np.array_equal(*full)
    other = pixels(model(["three yellow circles"], seeds=[0], options=GANOptions(0.0)))
    assert not np.array_equal(zero[0], other[0])  # the text still decides


def test_a_batch_gives_the_same_images_as_single_runs():
    model = tiny_gan()
    prompts = ["a red circle", "three yellow circles", "a blue square", "", "a red circle"] * 2
    seeds = list(range(5, 15))
    batch = pixels(model(prompts, seeds=seeds))  # ten images cross the pipeline's 8 rows
    for prompt, seed, image in zip(prompts, seeds, batch):
        assert np.array_equal(pixels(model([prompt], seeds=[seed]))[0], image)
    assert not np.array_equal(batch[0], batch[4])  # seeds differ
    assert model([], seeds=[]) == []
    steps = []
    model(prompts[:2], seeds=seeds[:2], callback=steps.append)
    assert [(s.i, s.total) for s in steps] == [(0, 1)]
    assert network_evaluations(model, GANOptions()) == 1  # one pass per image (sweep's NFE)


def test_generate_replay_inspect(installed, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["generate", "a red circle", "--model", "tiny-gan", "-n", "2", "--seed", "3",
            "-o", str(out), "--option", "truncation=0.7"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    paths = sorted(out.glob("*.png"))
    params = read_params(paths[0])
    assert params.model == "tiny-gan" and params.options == {"truncation": 0.7}
    assert "Truncation: 0.7" in Image.open(paths[0]).text["parameters"]
    assert Image.open(paths[0]).size == (16, 16)
    assert not np.array_equal(*pixels(Image.open(p) for p in paths))
    replay = runner.invoke(app, ["replay", str(paths[1])])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
    shown = runner.invoke(app, ["inspect", "tiny-gan"])
    assert shown.exit_code == 0 and "text-conditional GAN (DF-GAN)" in shown.output
    assert "truncation (float): 1.0" in shown.output
    assert "generator (FusionGenerator)" in shown.output
    for args, problem in (
        (["--steps", "5"], "tiny-gan takes no steps option; its options: truncation"),
        (["--option", "truncation=2"], "truncation must be in [0, 1], got 2.0"),
        (["--size", "32"], "size 32 cannot be made by this model"),
        (["--negative", "blue"], "a GAN takes no negative prompt"),
    ):
        bad = runner.invoke(app, ["generate", "x", "--model", "tiny-gan", *args,
                                  "-o", str(tmp_path / "o")])  # fmt: skip
        assert bad.exit_code == 2 and problem in bad.output, (args, bad.output)


def test_the_api_lists_the_gan_and_generates_with_its_options(installed, tmp_path):
    client = TestClient(create_app(ServeSettings(model="tiny-gan", output=tmp_path / "s")))
    listed = {m["name"]: m for m in client.get("/v1/models").json()}
    assert listed["tiny-gan"]["kind"] == "gan"
    assert [o["name"] for o in listed["tiny-gan"]["options"]] == ["truncation"]
    bad = client.post("/v1/txt2img", json={"prompt": "x", "model": "tiny-gan", "steps": 4})
    assert bad.status_code == 422 and "tiny-gan takes no steps option" in json.dumps(bad.json())
    good = client.post("/v1/txt2img", json={"prompt": "a red circle", "model": "tiny-gan",
                                            "options": {"truncation": 0.5}})  # fmt: skip
    assert good.status_code == 202, good.json()
    for _ in range(400):
        view = client.get(good.json()["status_url"]).json()
        if view["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert view["status"] == "done", view
    assert "Truncation: 0.5" in view["images"][0]["parameters"]


def test_interpolate_a_gan_between_two_seeds_and_two_prompts(installed, tmp_path):
    runner = CliRunner()
    out = tmp_path / "interp"
    args = ["interpolate", "a red circle", "--seed", "1", "--to-seed", "4", "--frames", "5",
            "--model", "tiny-gan", "-o", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    gif, strip = (out / "00000-interpolate.gif", out / "00000-interpolate-strip.png")
    assert result.output.split() == [str(gif), str(strip)]
    with Image.open(gif) as animation:
        assert animation.n_frames == 5
    frames = np.split(np.asarray(Image.open(strip)), 5, axis=1)
    model = load_text_to_image("tiny-gan")
    ends = pixels(model(["a red circle"] * 2, seeds=[1, 4]))
    assert np.array_equal(frames[0], ends[0]) and np.array_equal(frames[-1], ends[1])
    record = json.loads(Image.open(strip).text["atelier-interpolate"])
    assert record["seeds"] == [1, 4] and record["model_hash"] == model.model_hash
    both = runner.invoke(app, ["interpolate", "a red circle", "--to", "three yellow circles",
                               "--to-seed", "2", "--frames", "3", "--model", "tiny-gan",
                               "-o", str(out), "--option", "truncation=0.5"])  # fmt: skip
    assert both.exit_code == 0, both.output
    with Image.open(out / "00001-interpolate.gif") as animation:
        assert animation.n_frames == 3
    same = runner.invoke(app, ["interpolate", "x", "--model", "tiny-gan", "-o", str(out)])
    assert same.exit_code == 2 and "the two ends are the same image" in same.output


def test_interpolate_a_diffusion_model_and_refuse_a_token_model(tiny_model_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "interp"
    result = runner.invoke(app, ["interpolate", "a red circle", "--to", "a blue square",
                                 "--to-seed", "3", "--frames", "4", "--steps", "2",
                                 "--model", str(tiny_model_dir), "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(out / "00000-interpolate.gif") as animation:
        assert animation.n_frames == 4
    assert Image.open(out / "00000-interpolate-strip.png").size == (4 * 32, 32)
    folder = tmp_path / "tok"
    from atelier.kinds.token_model import save_token_model

    save_token_model(tiny_token_model("maskgit"), folder, card="# t\n")
    refused = runner.invoke(app, ["interpolate", "x", "--to-seed", "1", "--model", str(folder),
                                  "-o", str(out)])  # fmt: skip
    assert refused.exit_code == 2 and "cannot interpolate" in refused.output, refused.output


def test_diffusion_takes_given_initial_noise_and_text_in_place_of_its_own(tiny_model_dir):
    model = load_text_to_image(tiny_model_dir)
    pipe = model.pipeline()
    prompts, seeds = ["a red circle", "a blue square"], [3, 4]
    plain = pipe.sample(prompts, seeds=seeds, options=model.defaults)
    noise, _ = pipe.initial_noise(seeds)
    text = pipe.text_encoder.encode(prompts)
    given = pipe.sample(prompts, seeds=seeds, options=model.defaults, noise=noise, text=text)
    assert torch.equal(plain, given)
    swapped = pipe.sample(prompts, seeds=seeds, options=model.defaults, noise=noise.flip(0))
    assert not torch.equal(plain, swapped)
    with pytest.raises(ValueError, match="initial noise is \\(1, 4, 8, 8\\), expected"):
        pipe.sample(prompts, seeds=seeds, options=model.defaults, noise=noise[:1])
