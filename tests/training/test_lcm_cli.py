"""``atelier train shapes-ldm-minilm-lcm`` end to end on a tiny teacher: the distilled model
installs, loads by name as a latent model sampled by LCM's sampler, draws at 1, 2 and 4 steps
with a batch equal to single runs, resumes, and the recipe refuses what it cannot distil."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.kinds.diffusion import save_model
from atelier.kinds.registry import load_model
from tests.pipelines.conftest import tiny_model

TINY = ["data.n=16", "train.batch_size=8", "train.max_steps=2", "train.warmup_steps=0",
        "train.checkpoint_every=1", "train.sample_every=2", "train.log_every=1",
        "diffusion_model=tiny"]  # fmt: skip
PROMPTS = ["a red circle", "a blue square above a green triangle", "three yellow circles"]


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


def test_the_distilled_model_installs_and_draws_in_few_steps(home):
    model = load_model("shapes-ldm-minilm-lcm")
    assert model.config.kind == "latent" and model.unet.config.guidance_embedding
    assert model.defaults == SamplingOptions(steps=4, guidance=3.0, sampler="lcm", spacing="lcm")
    teacher = load_model("tiny")
    assert model.config.latent_space == teacher.config.latent_space
    card = (home / "models" / "shapes-ldm-minilm-lcm" / "README.md").read_text()
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


def test_a_run_resumes(home):
    result = CliRunner().invoke(
        app, ["train", "shapes-ldm-minilm-lcm", *TINY, "--resume", "train.max_steps=3"]
    )
    assert result.exit_code == 0, result.output
    log = home / "runs" / "shapes-ldm-minilm-lcm" / "log.jsonl"
    assert [json.loads(row)["step"] for row in log.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize(
    "override, message",
    [("diffusion_model=shapes-ldm-minilm-lcm", "already takes the guidance scale"),
     ("sampling.guidance=7", r"outside the scales the student learns, \[2.0, 5.0\]"),
     ("diffusion_model=nothing", "distils 'nothing', which cannot be loaded")],
)  # fmt: skip
def test_what_cannot_be_distilled_is_refused(home, tmp_path, override, message):
    result = CliRunner().invoke(app, ["train", "shapes-ldm-minilm-lcm", *TINY, override,
                                      "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and re.search(message, " ".join(result.output.split()))
