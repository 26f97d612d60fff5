"""An unCLIP model through every user surface, installed by name under a fresh ATELIER_HOME:
`generate` (options, PNG parameters, replay), `variations` (its own embedding, text diffs, the
PNGs recording the mode), `inspect`, `export --half`, `eval`, `compare`, `sweep` and the HTTP
API's /v1/models and /v1/txt2img; and the refusals of what it cannot take."""

import json
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.registry import load_text_to_image
from atelier.pipelines.metadata import read_params
from atelier.serve.app import ServeSettings, create_app
from tests.pipelines.unclip_models import install_unclip
from tests.serve.test_api import png_b64, wait

NAME = "tiny-unclip"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    install_unclip(tmp_path / "home" / "models")
    return tmp_path / "home"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_generate_replay_inspect_export(home, tmp_path):
    out = tmp_path / "out"
    result = run(
        "generate",
        "a red circle",
        "--model",
        NAME,
        "-o",
        out,
        "--seed",
        "3",
        "-n",
        "2",
        "--guidance",
        "2",
        "--option",
        "prior_steps=2",
        "-O",
        "two_sample_pick=false",
    )
    # fmt: skip
    assert result.exit_code == 0, result.output
    paths = sorted(out.glob("*.png"))
    params = read_params(paths[0])
    assert params.model == NAME and params.options["guidance"] == 2.0
    assert params.options["prior_steps"] == 2 and params.options["two_sample_pick"] is False
    text = Image.open(paths[0]).text["parameters"]
    assert "Prior steps: 2" in text and "Two sample pick: False" in text
    assert Image.open(paths[0]).size == (16, 16)
    assert not np.array_equal(*[np.asarray(Image.open(p)) for p in paths])
    replay = run("replay", paths[1])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
    shown = run("inspect", NAME)
    assert shown.exit_code == 0 and "unCLIP (a prior and a pixel decoder" in shown.output
    assert "prior_steps (int): 3" in shown.output and "clip.image_tower" in shown.output
    half = tmp_path / "half"
    exported = run("export", NAME, "-o", half, "--half", "--steps", "4", "-O", "prior_guidance=2",
                   "--name", "renamed")  # fmt: skip
    assert exported.exit_code == 0, exported.output
    again = load_text_to_image(half)
    assert again.name == "renamed" and (again.defaults.steps, again.defaults.prior_guidance) == (
        4, 2.0)  # fmt: skip
    assert (half / "decoder.safetensors").stat().st_size < (
        home / "models" / NAME / "decoder.safetensors").stat().st_size * 0.6  # fmt: skip
    (image,) = again(["a red circle"], seeds=[0])
    assert image.size == (16, 16)


def test_what_an_unclip_model_cannot_take_is_refused(home, tmp_path):
    for args, problem in (
        (["--guidance-rescale", "0.5"], "tiny-unclip takes no guidance_rescale option"),
        (["--option", "temperature=1"], "tiny-unclip takes no temperature option"),
        (["--option", "prior_steps=2000"], "1,000"),
        (["--size", "32"], "size 32 cannot be made by this model"),
    ):
        result = run("generate", "x", "--model", NAME, *args, "-o", tmp_path / "o")
        assert result.exit_code == 2 and problem in result.output, (args, result.output)
    prior = run("generate", "x", "--model", "tiny-prior", "-o", tmp_path / "o")
    assert prior.exit_code == 2 and "does not draw from text" in prior.output
    explain = run("explain", "a red circle", "--model", NAME, "-o", tmp_path / "e")
    assert explain.exit_code == 2 and "is neither" in explain.output


def test_variations_of_an_image_and_its_text_diffs(home, tmp_path, tiny_model_dir):
    source = tmp_path / "src.png"
    Image.new("RGB", (32, 32), "white").save(source)
    out = tmp_path / "v"
    result = run("variations", source, "--model", NAME, "-n", "2", "--seed", "4", "-o", out,
                 "--steps", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    paths = sorted(out.glob("*.png"))
    assert len(paths) == 2 and all(str(p) in result.output for p in paths)
    params = read_params(paths[0])
    assert params.mode == "variations" and params.seed == 4 and params.options["steps"] == 2
    assert params.extra == {"source": "src.png", "embedding": "clip"}
    assert "Mode: variations" in Image.open(paths[0]).text["parameters"]
    moved = tmp_path / "m"
    result = run("variations", source, "--model", NAME, "-n", "1", "-o", moved, "--toward",
                 "a blue circle", "--away", "a red circle", "--amount", "0.3")  # fmt: skip
    assert result.exit_code == 0, result.output
    extra = read_params(next(moved.glob("*.png"))).extra
    assert extra == {"source": "src.png", "embedding": "clip", "toward": "a blue circle",
                     "away": "a red circle", "amount": 0.3}  # fmt: skip
    for args, problem in (
        (["--model", NAME, "--strength", "0.5"], "--strength belongs to a diffusion model"),
        (["--model", NAME, "--toward", "a blue circle"], "needs both --toward"),
        (["--model", NAME, "--toward", "a", "--away", "a", "--amount", "0.5"],
         "the same CLIP embedding"),
        (["--model", NAME, "--toward", "a blue", "--away", "a red", "--amount", "2"],
         "amount must be in [0, 1]"),
        (["--model", tiny_model_dir, "--toward", "a", "--away", "b"],
         "move an unCLIP model's CLIP embedding"),
    ):  # fmt: skip
        result = run("variations", source, *args, "-o", tmp_path / "x")
        assert result.exit_code == 2 and problem in result.output, (args, result.output)
    # A diffusion model's variations are img2img as before, at their default strength.
    plain = run("variations", source, "--model", tiny_model_dir, "-n", "1", "--steps", "2", "-o",
                tmp_path / "d")  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert read_params(next((tmp_path / "d").glob("*.png"))).extra["strength"] == 0.6


def test_interpolate_between_two_images_in_clip_space(home, tmp_path):
    model = load_text_to_image(NAME)
    a, b = model(["a red circle", "three yellow circles"], seeds=[0, 1])
    first, last = tmp_path / "a.png", tmp_path / "b.png"
    a.save(first)
    b.save(last)
    out = tmp_path / "interp"
    result = run("interpolate", "--image", first, "--to-image", last, "--model", NAME, "--seed",
                 "5", "--frames", "4", "--steps", "2", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    gif, strip = out / "00000-interpolate.gif", out / "00000-interpolate-strip.png"
    assert result.output.split() == [str(gif), str(strip)]
    with Image.open(gif) as animation:
        assert animation.n_frames == 4
    frames = np.split(np.asarray(Image.open(strip)), 4, axis=1)
    assert frames[0].shape == (16, 16, 3)
    options = replace(model.defaults, steps=2)
    drawn = model.interpolate_images((a, b), seed=5, frames=4, options=options)
    assert all(np.array_equal(f, np.asarray(d)) for f, d in zip(frames, drawn))
    # The ends decode A's and B's own embeddings at the seed: their variations.
    ends = [model.variations(x, seeds=[5], options=options)[0] for x in (a, b)]
    assert np.array_equal(frames[0], np.asarray(ends[0]))
    assert np.array_equal(frames[-1], np.asarray(ends[1]))
    record = json.loads(Image.open(strip).text["atelier-interpolate"])
    assert record["images"] == ["a.png", "b.png"] and record["seed"] == 5
    assert record["model_hash"] == model.model_hash and record["options"]["steps"] == 2
    assert record["embedding"] == "clip"


def test_interpolate_refuses_what_an_image_path_cannot_take(home, tmp_path, tiny_model_dir):
    image = tmp_path / "a.png"
    Image.new("RGB", (16, 16), "white").save(image)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    pair = ["--image", image, "--to-image", image]
    for args, problem in (
        ([*pair, "--model", tiny_model_dir], "only an unCLIP model (kind unclip)"),
        (["--image", image, "--model", NAME], "--image needs --to-image B.png"),
        (["--to-image", image, "--model", NAME], "--to-image needs --image A.png"),
        ([*pair, "--to", "a blue square", "--model", NAME], "leave out PROMPT and --to"),
        (["a red circle", *pair, "--model", NAME], "leave out PROMPT and --to"),
        ([*pair, "--to-seed", "3", "--model", NAME], "leave out --to-seed"),
        ([*pair, "--frames", "1", "--model", NAME], "--frames must be at least 2"),
        ([*pair, "--guidance-rescale", "0.5", "--model", NAME], "takes no guidance_rescale"),
        (["--image", garbage, "--to-image", image, "--model", NAME],
         "cannot use " + str(garbage) + " as the first image"),
        (["--image", image, "--to-image", tmp_path / "missing.png", "--model", NAME],
         "no last image file at"),
        (["a red circle", "--to", "a blue square", "--model", NAME],
         "give --image A.png --to-image B.png"),
        ([], "give PROMPT"),
    ):  # fmt: skip
        result = run("interpolate", *args, "-o", tmp_path / "x")
        assert result.exit_code == 2 and problem in result.output, (args, result.output)
    assert not (tmp_path / "x").exists()  # refused before the output folder is made


def test_eval_compare_and_sweep(home, tmp_path, tiny_model_dir, clip_dir):
    result = run("eval", NAME, "--limit", "2", "-o", tmp_path / "eval", "--no-metrics")
    assert result.exit_code == 0, result.output
    report = json.loads(next((tmp_path / "eval").glob("*.json")).read_text())
    assert len(report["images"]) == 2
    result = run("compare", NAME, tiny_model_dir, "--every", "112", "--set",
                 f"{NAME}:prior_steps=2", "--features", clip_dir, "--real", "8", "-o",
                 tmp_path / "arena")  # fmt: skip
    assert result.exit_code == 0, result.output
    arena = json.loads((tmp_path / "arena" / "arena.json").read_text())
    assert arena["entrants"][NAME]["prior_steps"] == 2
    result = run("sweep", NAME, "--x", "prior_steps=1,2", "--y", "two_sample_pick=true,false",
                 "-o", tmp_path / "sweep")  # fmt: skip
    assert result.exit_code == 0, result.output
    sweep = json.loads(next((tmp_path / "sweep").glob("*-sweep.json")).read_text())
    assert len(sweep["cells"]) == 4


def test_the_api_lists_and_serves_it(home, tmp_path):
    settings = ServeSettings(model=NAME, output=tmp_path / "served")
    with TestClient(create_app(settings)) as client:
        listed = {m["name"]: m for m in client.get("/v1/models").json()}
        assert listed[NAME]["kind"] == "unclip" and listed[NAME]["text_to_image"]
        assert "prior_steps" in [o["name"] for o in listed[NAME]["options"]]
        assert not listed["tiny-prior"]["text_to_image"]
        body = {"prompt": "a red circle", "seed": 2, "n": 2, "steps": 2,
                "options": {"prior_steps": 2, "two_sample_pick": False}}  # fmt: skip
        r = client.post("/v1/txt2img", json=body)
        assert r.status_code == 202, r.text
        view = wait(client, r.json()["id"])
        assert view["status"] == "done", view
        text = view["images"][0]["parameters"]
        assert "Prior steps: 2" in text and "Steps: 2" in text and f"Model: {NAME}" in text
        for change, message in (
            ({"guidance_rescale": 0.5}, "tiny-unclip takes no guidance_rescale option"),
            ({"options": {"prior_steps": 500}}, "prior_steps 500 is over this server's limit"),
            ({"options": {"prior_sampler": "nope"}}, "unknown prior_sampler 'nope'"),
        ):
            bad = client.post("/v1/txt2img", json={**body, **change})
            assert bad.status_code == 422 and message in bad.text, bad.text
        image = png_b64(Image.new("RGB", (16, 16), "white"))
        edit = client.post("/v1/img2img", json={"prompt": "x", "image": image, "model": NAME})
        assert edit.status_code in (404, 422) and "not a text-to-image diffusion" in edit.text
