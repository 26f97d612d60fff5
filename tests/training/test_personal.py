"""The three personalisation recipes end to end on the shipped default model, two steps each:
what they install, how it is used, resume, and the data they refuse."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from atelier.kinds import adapters
from atelier.kinds.registry import load_text_to_image
from atelier.training.recipes import RecipeError, get_recipe
from atelier.training.run import run_recipe

PROMPT = "a yellow sks in the bottom right"


def tiny(kind: str, **personal):
    recipe = get_recipe(kind)
    return replace(recipe, name=f"t-{kind}",
                   train=replace(recipe.train, max_steps=2, sample_every=2, checkpoint_every=1),
                   personal=replace(recipe.personal, concept_images=5, class_images=4,
                                    **personal))  # fmt: skip


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    return tmp_path


def draw(model, prompt: str) -> np.ndarray:
    return np.asarray(model([prompt], seeds=[3], options=replace(model.defaults, steps=4))[0])


def test_lora_installs_both_formats_and_weight_zero_is_the_base(home):
    folder = run_recipe(tiny("lora"), out=home / "run")
    assert folder == adapters.loras_dir() / "t-lora"
    assert (folder / adapters.DIFFUSERS_FILE).is_file() and (
        folder / "t-lora.safetensors"
    ).is_file()
    assert json.loads((folder / "lora.json").read_text())["token"] == "sks"
    assert list((home / "run" / "samples").glob("samples-*.png"))
    model = load_text_to_image("shapes-ldm-minilm")
    base = draw(model, PROMPT)
    assert np.array_equal(draw(model, f"{PROMPT} <lora:t-lora:0>"), base)
    assert not np.array_equal(draw(model, f"{PROMPT} <lora:t-lora:1>"), base)
    assert np.array_equal(draw(model, PROMPT), base)  # the tag's LoRA is gone afterwards
    # Merged into the weights by `atelier export --lora`: the same images, up to rounding.
    from typer.testing import CliRunner

    from atelier.cli import app

    merged_dir = home / "merged"
    result = CliRunner().invoke(app, ["export", "shapes-ldm-minilm", "-o", str(merged_dir),
                                      "--lora", "t-lora:1", "--name", "merged"])  # fmt: skip
    assert result.exit_code == 0, result.output
    hooked = draw(model, f"{PROMPT} <lora:t-lora:1>").astype(int)
    merged = draw(load_text_to_image(merged_dir), PROMPT).astype(int)
    assert np.abs(merged - hooked).max() <= 2
    # Resume: two more steps from the run's checkpoints.
    longer = tiny("lora")
    run_recipe(replace(longer, train=replace(longer.train, max_steps=4)), out=home / "run",
               resume=True)  # fmt: skip
    assert "4" in (home / "run" / "samples" / "samples.jsonl").read_text().splitlines()[-1]


def test_textual_inversion_installs_a_word_that_loads_by_itself(home):
    folder = run_recipe(tiny("textual-inversion"), out=home / "run")
    assert list(adapters.read_embeddings(folder / adapters.EMBEDS_FILE)) == ["sks"]
    model = load_text_to_image("shapes-ldm-minilm")
    base = draw(model, "a red circle")
    draw(model, PROMPT)  # loads the installed word
    assert model.text_encoder.learned.tokens == ["sks"]
    assert np.array_equal(draw(model, "a red circle"), base)


def test_dreambooth_with_and_without_prior_preservation(home):
    for weight, out in ((1.0, "prior"), (0.0, "plain")):  # LoRA takes the prior too
        recipe = replace(tiny("dreambooth", prior_weight=weight), name=f"t-db-{out}")
        folder = run_recipe(recipe, out=home / out)
        assert (home / out / "class_latents.safetensors").is_file() == (weight > 0)
        assert load_text_to_image(folder).name == f"t-db-{out}"


def test_a_folder_whose_captions_lack_the_token_is_refused(home):
    data = home / "data"
    data.mkdir()
    Image.new("RGB", (64, 64), "white").save(data / "a.png")
    (data / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a dog"}))
    with pytest.raises(RecipeError, match="name the concept by its token 'sks'"):
        run_recipe(tiny("lora"), out=home / "run", data_dir=data)


def test_commands_from_a_folder_to_a_png(home):
    """`atelier shapes concept`, `atelier train lora --data --token`, then `generate --lora`
    and `img2img --lora`: the PNG records the tag, and replay draws it again."""
    from typer.testing import CliRunner

    from atelier.cli import app

    runner = CliRunner()
    data = home / "concept"
    result = runner.invoke(app, ["shapes", "concept", "-o", str(data), "--token", "zqx",
                                 "--n", "5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "lora", "--data", str(data), "--token", "zqx",
                                 "--out", str(home / "run"), "name=zqx-lora",
                                 "train.max_steps=2", "train.sample_every=2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = home / "png"
    result = runner.invoke(app, ["generate", "a red zqx", "--lora", "zqx-lora:0.7", "--steps",
                                 "3", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    png = next(out.glob("*.png"))
    result = runner.invoke(app, ["replay", str(png)])
    assert result.exit_code == 0 and "pixels match" in result.output, result.output
    result = runner.invoke(app, ["img2img", str(png), "a blue zqx", "--lora", "zqx-lora",
                                 "--steps", "3", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    # Outpainting and a diffusion model's variations take --lora too; the PNG records the tag.
    for command in (["outpaint", str(png), "a red zqx", "--right", "16"],
                    ["variations", str(png), "--prompt", "a red zqx", "-n", "1"]):  # fmt: skip
        edited = home / command[0]
        result = runner.invoke(app, [*command, "--lora", "zqx-lora:0.5", "--steps", "3", "-o",
                                     str(edited)])  # fmt: skip
        assert result.exit_code == 0, result.output
        written = Image.open(next(edited.glob("*.png")))
        assert "a red zqx <lora:zqx-lora:0.5>" in written.text["parameters"], command
    result = runner.invoke(app, ["generate", "a red zqx", "--lora", "nope", "-o", str(out)])
    assert result.exit_code == 2 and "no LoRA 'nope'" in result.output
