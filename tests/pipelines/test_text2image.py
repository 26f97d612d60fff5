"""The text-to-image pipeline and model folders: determinism, batch = singles, clear errors."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from atelier.diffusion.options import SamplingOptions
from atelier.kinds.default import DEFAULT_MODEL
from atelier.kinds.folder import resolve
from atelier.kinds.registry import load_model

PROMPTS = ["a red circle", "a blue square above a green triangle", "", "three yellow circles"]


def pixels(images):
    return [np.asarray(im) for im in images]


def test_round_trip_loads_identical_weights(tiny_model_dir):
    a, b = load_model(tiny_model_dir), load_model(tiny_model_dir)
    assert a.model_hash == b.model_hash and len(a.model_hash) == 10
    for key, value in a.unet.state_dict().items():
        assert torch.equal(value, b.unet.state_dict()[key])


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m_sde"])
def test_batch_equals_single_runs_bit_for_bit(tiny_model_dir, sampler):
    pipe = load_model(tiny_model_dir).pipeline(rows=4)
    options = SamplingOptions(steps=3, guidance=2.5, sampler=sampler)
    seeds = [5, 6, 7, 8]
    batch = pixels(pipe(PROMPTS, seeds=seeds, options=options, negative_prompt="green"))
    for prompt, seed, image in zip(PROMPTS, seeds, batch):
        single = pixels(pipe([prompt], seeds=[seed], options=options, negative_prompt="green"))[0]
        assert np.array_equal(image, single), (prompt, seed)
    assert image.shape == (32, 32, 3)
    assert not np.array_equal(batch[0], batch[1])


def test_the_default_model_pads_no_single_image_and_a_batch_equals_singles(monkeypatch):
    model = load_model(DEFAULT_MODEL)
    rows: dict[str, list[int]] = {"unet": [], "vae": []}
    for name, module, method in (("unet", model.unet, "forward"), ("vae", model.vae, "decode")):
        original = getattr(module, method)

        def counted(x, *args, _f=original, _name=name, **kwargs):
            rows[_name].append(x.shape[0])
            return _f(x, *args, **kwargs)

        monkeypatch.setattr(module, method, counted)
    options = replace(model.defaults, steps=4)  # its own sampler, guidance and schedule
    prompts = ["a red circle above a blue square", "two green triangles", "a purple square",
               "three yellow circles", "a cyan triangle on the left", "a blue circle",
               "a red square below a green circle", "a purple triangle"]  # fmt: skip
    batch = pixels(model(prompts, seeds=list(range(8)), options=options))
    for seed, (prompt, image) in enumerate(zip(prompts, batch)):
        rows["unet"].clear()
        rows["vae"].clear()
        assert np.array_equal(pixels(model([prompt], seeds=[seed], options=options))[0], image)
        # A guided image's two rows a UNet call and one a decode: nothing padded.
        assert rows == {"unet": [2] * 4, "vae": [1]}


def test_same_seed_same_image_and_different_seed_differs(tiny_model_dir):
    pipe = load_model(tiny_model_dir).pipeline()
    a = pixels(pipe(["a red circle"], seeds=[1]))[0]
    b = pixels(pipe(["a red circle"], seeds=[1]))[0]
    c = pixels(pipe(["a red circle"], seeds=[2]))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="valid: .*euler"):
        SamplingOptions(sampler="k_lms")
    with pytest.raises(ValueError, match="positive integer"):
        SamplingOptions(steps=0)
    with pytest.raises(ValueError, match="finite"):
        SamplingOptions(guidance=float("nan"))


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="known model names"):
        resolve(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no model at 'nope'"):
        load_model("nope")


def test_corrupt_and_mismatched_weights(tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    data = (broken / "unet.safetensors").read_bytes()
    (broken / "unet.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_model(broken)
    shutil.copy(tiny_model_dir / "unet.safetensors", broken / "unet.safetensors")
    state = load_file(str(broken / "vae.safetensors"))
    key = next(iter(state))
    state[key] = torch.zeros(3, 3)
    save_file(state, str(broken / "vae.safetensors"))
    with pytest.raises(ValueError, match="does not match config.json.*shape mismatch"):
        load_model(broken)
    (broken / "config.json").write_text('{"format": 1, "name": "x", "kind": "latent"}')
    with pytest.raises(ValueError, match="not a valid model config"):
        load_model(broken)
    (broken / "config.json").write_text('{"format": 1, "name": "x"}')
    with pytest.raises(ValueError, match="names kind None, which this atelier does not know"):
        load_model(broken)


def test_half_precision_export_loads_and_generates(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from atelier.cli import app

    result = CliRunner().invoke(
        app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "h"), "--half"]
    )
    assert result.exit_code == 0, result.output
    full = (tiny_model_dir / "unet.safetensors").stat().st_size
    half = (tmp_path / "h" / "unet.safetensors").stat().st_size
    assert half < 0.6 * full
    model = load_model(tmp_path / "h")
    assert next(model.unet.parameters()).dtype == torch.float32
    image = model.pipeline()(["a red circle"], seeds=[0])[0]
    assert image.size == (32, 32)
    again = CliRunner().invoke(
        app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "d"), "--sampler", "heun",
              "--steps", "7", "--guidance", "4.5", "--name", "promoted"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    renamed = load_model(tmp_path / "d")
    defaults = renamed.config.defaults
    assert (defaults.sampler, defaults.steps, defaults.guidance) == ("heun", 7, 4.5)
    assert renamed.config.name == "promoted"
    card = (tmp_path / "d" / "README.md").read_text()
    assert card.startswith("# promoted\n"), card[:80]
    bad = CliRunner().invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "e"),
                                   "--sampler", "magic"])  # fmt: skip
    assert bad.exit_code == 2 and "unknown sampler" in bad.output


def test_overridden_applies_only_what_is_set_and_validates():
    d = SamplingOptions(steps=40, guidance=3.0, sampler="dpmpp_2m_sde")
    assert d.overridden(steps=None, guidance=None, sampler=None) == d
    assert d.overridden(guidance=0.0, guidance_rescale=0.7) == SamplingOptions(
        steps=40, guidance=0.0, sampler="dpmpp_2m_sde", guidance_rescale=0.7
    )
    with pytest.raises(ValueError, match="positive integer"):
        d.overridden(steps=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        d.overridden(sampler="lms")
