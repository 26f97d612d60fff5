"""Steering a diffusion model by gradient end to end: batch = singles under CLIP guidance, the
command's flags and their refusals, replay of a steered PNG, and the HTTP API's fields."""

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.clip_guidance import CLIPGuidanceOptions
from atelier.kinds.clip import load_clip
from atelier.kinds.steering import SteerSpec, steered
from atelier.pipelines.metadata import read_params
from atelier.pipelines.steering import SteeredText2Image, clip_steer
from atelier.serve.jobs import Job
from atelier.serve.runners import Models, Refused, Runners, ServeSettings
from atelier.serve.schemas import Txt2ImgRequest
from tests.pipelines.conftest import install_by_name, tiny_model

PROMPTS = ["a red circle", "a blue square above a green triangle", "three yellow circles"]


def pixels(images):
    return [np.asarray(im) for im in images]


def test_clip_guided_batch_equals_singles_and_moves_the_image(clip_dir):
    model, clip = tiny_model(), load_clip(clip_dir)
    guided = SteeredText2Image(model, clip_steer(clip, CLIPGuidanceOptions(scale=3000.0)), {})
    batch = pixels(guided(PROMPTS, seeds=[5, 6, 7]))
    singles = [pixels(guided([p], seeds=[s]))[0] for p, s in zip(PROMPTS, [5, 6, 7])]
    for a, b in zip(batch, singles):
        assert np.array_equal(a, b)
    plain = pixels(model(PROMPTS, seeds=[5, 6, 7]))
    assert any(not np.array_equal(a, b) for a, b in zip(batch, plain))
    off = CLIPGuidanceOptions(scale=0.0, range_scale=0.0)
    unsteered = pixels(
        SteeredText2Image(model, clip_steer(clip, off), {})(PROMPTS, seeds=[5, 6, 7])
    )
    for a, b in zip(unsteered, plain):  # every scale 0: the plain model, bit for bit
        assert np.array_equal(a, b)


def test_a_steered_prompt_takes_its_lora_tags(clip_dir, tmp_path, monkeypatch):
    """<lora:...> tags under steering: weight 0 is the steered base bit for bit, weight 1 moves
    the image, and each prompt in a batch gets its own tags' LoRAs (the guide reads the text
    without them)."""
    from atelier.kinds.adapters import loras_dir, save_lora
    from atelier.models.lora import LoRAConfig, LoRANetwork
    from tests.models.test_unet import perturb

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    model, clip = tiny_model(), load_clip(clip_dir)
    network = LoRANetwork.create(model.adapter_parts(), LoRAConfig(rank=2))
    perturb(network, seed=3)
    save_lora(network, loras_dir() / "l", name="l", card="# l\n", info={})
    guided = SteeredText2Image(model, clip_steer(clip, CLIPGuidanceOptions(scale=3000.0)), {})
    base = pixels(guided(PROMPTS[:2], seeds=[5, 6]))
    off = pixels(guided([p + " <lora:l:0>" for p in PROMPTS[:2]], seeds=[5, 6]))
    assert all(np.array_equal(a, b) for a, b in zip(base, off))
    mixed = pixels(guided([PROMPTS[0] + " <lora:l:1>", PROMPTS[1]], seeds=[5, 6]))
    assert not np.array_equal(mixed[0], base[0]) and np.array_equal(mixed[1], base[1])
    assert not any(n.attached for n in model.loras.values())  # detached afterwards


def test_the_cap_on_x0s_shift_reaches_the_guide_and_the_record(clip_dir, tmp_path, monkeypatch):
    """SteerSpec.max_shift is what the guidance caps each step at (a vanishing cap leaves the
    plain model's pixels within one level), and the record keeps it for replay."""
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    model = tiny_model()
    plain = pixels(model(PROMPTS[:2], seeds=[5, 6]))
    capped = steered(model, SteerSpec("clip", 3000.0, str(clip_dir), max_shift=1e-9))
    assert capped.record["max_shift"] == 1e-9
    assert SteerSpec.from_record(capped.record) == SteerSpec("clip", 3000.0, str(clip_dir),
                                                             max_shift=1e-9)  # fmt: skip

    def gap(images):  # mean absolute difference from the plain model's pixels
        return np.mean(
            [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(images, plain)]
        )

    held = gap(pixels(capped(PROMPTS[:2], seeds=[5, 6])))
    uncapped = steered(model, SteerSpec("clip", 3000.0, str(clip_dir)))  # the default, 1.0
    free = gap(pixels(uncapped(PROMPTS[:2], seeds=[5, 6])))
    assert held < 0.1 * free
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="max-shift must be a number"):
            SteerSpec("clip", 3.0, "c", max_shift=bad)


def test_steering_needs_a_guide_of_the_right_kind(clip_dir, tiny_model_dir):
    model = tiny_model()
    with pytest.raises(ValueError, match="needs a noise-aware classifier .* is a CLIP model"):
        steered(model, SteerSpec("classifier", 3.0, str(clip_dir)))
    with pytest.raises(
        ValueError, match="needs a CLIP or noised CLIP model .* is a text-to-image diffusion model"
    ):
        steered(model, SteerSpec("clip", 100.0, str(tiny_model_dir)))
    with pytest.raises(ValueError, match=r"clip-guidance must be a number in \[0, 10000\]"):
        SteerSpec("clip", -1.0, "shapes-clip")
    with pytest.raises(ValueError, match="cutouts must be an integer"):
        SteerSpec("clip", 1.0, "shapes-clip", cutouts=0)
    spec = SteerSpec("clip", 5.0, "c")
    assert SteerSpec.from_record(spec.to_record()) == spec
    with pytest.raises(ValueError, match="not a steering record"):
        SteerSpec.from_record({"method": "clip", "scale": 1, "model": "c", "evil": 1})


def run(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def test_generate_steers_records_and_replays(tiny_installed, clip_dir, tmp_path):
    out = tmp_path / "out"
    result = run(
        "generate",
        "a red circle",
        "--model",
        "tiny",
        "--clip-guidance",
        500,
        "--clip-model",
        clip_dir,
        "--cutouts",
        3,
        "--steps",
        2,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    (png,) = out.glob("*.png")
    params = read_params(png)
    assert params.extra["steer"] == {"method": "clip", "scale": 500.0, "model": str(clip_dir),
                                     "cutouts": 3, "cut_power": 1.0, "tv_scale": 0.0,
                                     "range_scale": 50.0, "max_shift": 1.0}  # fmt: skip
    again = run("replay", png)
    assert again.exit_code == 0 and "pixels match" in again.output, again.output


@pytest.mark.parametrize("flags,message", [
    (["--clip-guidance", "100", "--classifier-guidance", "3"],
     "give --clip-guidance or --classifier-guidance, not both"),
    (["--clip-guidance", "nan"], "clip-guidance must be a number in [0, 10000]"),
    (["--clip-guidance", "1e6"], "clip-guidance must be a number in [0, 10000]"),
    (["--clip-guidance", "100", "--cutouts", "0"], "cutouts must be an integer in [1, 64]"),
    (["--clip-guidance", "100", "--cut-power", "0"], "cut-power must be in (0, 10]"),
    (["--classifier-guidance", "3", "--classifier-model", "no-such-model"], "no model"),
    (["--classifier-guidance", "3", "--classifier-model", "CLIP"],
     "--classifier-guidance needs a noise-aware classifier"),
])  # fmt: skip
def test_generate_refuses_bad_steering(flags, message, tiny_installed, clip_dir, tmp_path):
    flags = [str(clip_dir) if f == "CLIP" else f for f in flags]
    result = run("generate", "a red circle", "--model", "tiny", *flags, "-o", tmp_path)
    assert result.exit_code == 2 and message in result.output, result.output


def test_token_models_are_not_steered(installed, tmp_path):
    result = run(
        "generate",
        "a red circle",
        "--model",
        "tiny-maskgit",
        "--clip-guidance",
        "100",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 2
    assert "--clip-guidance steers diffusion models; tiny-maskgit is a" in result.output


def test_api_fields_are_bounded_and_exclusive():
    with pytest.raises(ValidationError, match="not both"):
        Txt2ImgRequest(prompt="x", clip_guidance=1.0, classifier_guidance=1.0)
    for bad in (
        {"clip_guidance": 1e5},
        {"clip_guidance": -1},
        {"cutouts": 0},
        {"cutouts": 65},
        {"clip_model": "../etc"},
        {"classifier_guidance": True},
    ):
        with pytest.raises(ValidationError):
            Txt2ImgRequest(prompt="x", **bad)


def test_api_steers_and_refuses_a_wrong_guide_before_queueing(tmp_path, monkeypatch, clip_dir,
                                                              tiny_model_dir):  # fmt: skip
    install_by_name(clip_dir, tmp_path / "home", monkeypatch)  # as "c"
    (tmp_path / "out").mkdir()
    settings = ServeSettings(model=str(tiny_model_dir), output=tmp_path / "out")
    runners = Runners(settings, Models(default=settings.model))
    model = runners.models.text_to_image(settings.model)
    wrong = Txt2ImgRequest(prompt="a red circle", classifier_guidance=3.0, classifier_model="c")
    with pytest.raises(Refused, match="needs a noise-aware classifier") as err:
        runners.check("txt2img", wrong, model)
    assert err.value.field == "classifier_guidance"
    missing = Txt2ImgRequest(prompt="a red circle", clip_guidance=3.0, clip_model="nope")
    with pytest.raises(Refused, match="no model named 'nope' on this server"):
        runners.check("txt2img", missing, model)
    req = Txt2ImgRequest(prompt="a red circle", seed=1, steps=2, clip_guidance=800.0,
                         clip_model="c", cutouts=2)  # fmt: skip
    runners.check("txt2img", req, model)
    (result,) = runners.txt2img([Job("txt2img", req, None)], lambda info, preview=None: None)
    params = read_params(settings.output / result[0].url.split("/")[-1])
    assert params.extra["steer"]["scale"] == 800.0 and params.extra["steer"]["cutouts"] == 2
