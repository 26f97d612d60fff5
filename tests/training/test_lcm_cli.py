"""``atelier train shapes-ldm-minilm-lcm`` end to end on a tiny teacher: the distilled model
installs, loads by name as a latent model sampled by LCM's sampler, draws at 1, 2 and 4 steps
with a batch equal to single runs, resumes, and the recipe refuses what it cannot distil.
``shapes-ldm-minilm-lcm-lora`` likewise: it installs a model (the adapters merged) and a LoRA,
and the teacher with that LoRA under LCM's sampler draws what the merged model draws."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.kinds import adapters
from atelier.kinds.diffusion import save_model
from atelier.kinds.registry import load_model
from tests.pipelines.conftest import tiny_model

TINY = ["data.n=16", "train.batch_size=8", "train.max_steps=2", "train.warmup_steps=0",
        "train.checkpoint_every=1", "train.sample_every=2", "train.log_every=1",
        "diffusion_model=tiny"]  # fmt: skip
PROMPTS = ["a red circle", "a blue square above a green triangle", "three yellow circles"]
LORA = "shapes-ldm-minilm-lcm-lora"
# A high rate, so two steps move the adapters well off zero.
LORA_TINY = [*TINY, "train.lr=1e-2"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("ATELIER_HOME", str(home))
    save_model(tiny_model(), home / "models" / "tiny", card="# tiny\nRandom weights.\n")
    result = CliRunner().invoke(app, ["train", "shapes-ldm-minilm-lcm", *TINY])
    assert result.exit_code == 0, result.output
    yield home
    patch.undo()


@pytest.fixture(scope="module")
def lora_home(home):
    result = CliRunner().invoke(app, ["train", LORA, *LORA_TINY])
    assert result.exit_code == 0, result.output
    return home


def test_the_distilled_model_installs_and_draws_in_few_steps(home):
    # shapes-ldm-minilm-lcm is shipped, so the run installs shapes-ldm-minilm-lcm-local beside it.
    model = load_model("shapes-ldm-minilm-lcm-local")
    assert model.config.kind == "latent" and model.unet.config.guidance_embedding
    assert model.defaults == SamplingOptions(steps=4, guidance=3.0, sampler="lcm", spacing="lcm")
    teacher = load_model("tiny")
    assert model.config.latent_space == teacher.config.latent_space
    card = (home / "models" / "shapes-ldm-minilm-lcm-local" / "README.md").read_text()
    assert "Latent consistency distillation (Luo et al. 2023) of tiny" in card
    for steps in (1, 2, 4):
        options = SamplingOptions(steps=steps, guidance=3.0, sampler="lcm", spacing="lcm")
        batch = [np.asarray(im) for im in model(PROMPTS, seeds=[0, 1, 2], options=options)]
        for i, (prompt, image) in enumerate(zip(PROMPTS, batch)):
            (alone,) = model([prompt], seeds=[i], options=options)
            assert np.array_equal(np.asarray(alone), image), (steps, prompt)
    rows = (home / "runs" / "shapes-ldm-minilm-lcm" / "samples" / "samples.jsonl").read_text()
    record = json.loads(rows.splitlines()[-1])
    assert record["step"] == 2 and {"judge_pass_1", "judge_pass_2", "judge_pass_4"} <= set(record)


def test_the_lcm_lora_installs_merged_and_as_a_lora(lora_home):
    model = load_model(LORA)
    assert model.config.kind == "latent" and not model.unet.config.guidance_embedding
    options = SamplingOptions(steps=4, guidance=1.0, sampler="lcm", spacing="lcm")
    assert model.defaults == options
    assert LORA in adapters.installed_loras()
    info = json.loads((lora_home / "loras" / LORA / "lora.json").read_text())
    assert info["kind"] == "lcm-lora" and info["base"] == "tiny"
    card = (lora_home / "models" / LORA / "README.md").read_text()
    assert "LCM-LoRA (Luo et al. 2023)" in card and f"atelier train {LORA}" in card
    seeds = [0, 1, 2]
    want = model.pipeline().sample(PROMPTS, seeds=seeds, options=options)
    base = load_model("tiny")
    plain = base.pipeline().sample(PROMPTS, seeds=seeds, options=options)
    base.use_loras([(LORA, 1.0)])
    got = base.pipeline().sample(PROMPTS, seeds=seeds, options=options)
    scale = want.abs().max()
    assert (got - want).abs().max() <= 1e-4 * scale
    assert (plain - want).abs().max() > 1e-3 * scale  # the adapters did learn something


@pytest.mark.parametrize("recipe, overrides", [("shapes-ldm-minilm-lcm", TINY), (LORA, LORA_TINY)])
def test_a_run_resumes(home, lora_home, recipe, overrides):
    result = CliRunner().invoke(app, ["train", recipe, *overrides, "--resume",
                                      "train.max_steps=3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    log = home / "runs" / recipe / "log.jsonl"
    assert [json.loads(row)["step"] for row in log.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize(
    "recipe, override, message",
    [("shapes-ldm-minilm-lcm", "diffusion_model=shapes-ldm-minilm-lcm",
      "already takes the guidance scale"),
     ("shapes-ldm-minilm-lcm", "sampling.guidance=7",
      r"outside the scales the student learns, \[2.0, 5.0\]"),
     ("shapes-ldm-minilm-lcm", "diffusion_model=nothing",
      "distils 'nothing', which cannot be loaded"),
     (LORA, "distillation.target_decay=0.95", "keeps no target network")],
)  # fmt: skip
def test_what_cannot_be_distilled_is_refused(home, tmp_path, recipe, override, message):
    result = CliRunner().invoke(app, ["train", recipe, *TINY, override,
                                      "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and re.search(message, " ".join(result.output.split()))
