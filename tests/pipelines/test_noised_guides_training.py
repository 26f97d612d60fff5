"""The two noise-aware recipes end to end on a tiny diffusion model: train, install, load by the
registry, steer generation with them, and refuse a model whose latents they never read."""

import numpy as np
import pytest
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.registry import describe, load_model
from atelier.kinds.steering import SteerSpec, steered
from tests.pipelines.conftest import tiny_model

TINY = ["data.n=24", "train.batch_size=8", "train.max_steps=2", "train.warmup_steps=0",
        "train.checkpoint_every=1", "diffusion_model=tiny"]  # fmt: skip


# Both recipes ship a model of their name, so a run installs NAME-local beside it.
CLIP_NOISED, CLASSIFIER = "shapes-clip-noised-local", "shapes-classifier-noised-local"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clip_dir, tiny_model_dir):
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("ATELIER_HOME", str(home))
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_model_dir)
    (home / "models" / "c").symlink_to(clip_dir)
    runner = CliRunner()
    clip = runner.invoke(app, ["train", "shapes-clip-noised", *TINY, "clip_model=c",
                               "noised_clip.width=8", "noised_clip.layers=1",
                               "noised_clip.heads=2"])  # fmt: skip
    assert clip.exit_code == 0, clip.output
    classifier = runner.invoke(app, ["train", "shapes-classifier-noised", *TINY,
                                     "noised_classifier.channels=[8]", "noised_classifier.groups=4",
                                     "noised_classifier.hidden=8"])  # fmt: skip
    assert classifier.exit_code == 0, classifier.output
    yield home
    patch.undo()


def test_both_recipes_install_models_the_registry_loads(trained):
    for name, kind in ((CLIP_NOISED, "clip-noised"),
                       (CLASSIFIER, "classifier-noised")):  # fmt: skip
        listed = describe(name)
        assert listed.kind == kind and "guides tiny" in listed.facts.title
        card = (trained / "models" / name / "README.md").read_text()
        assert "t = 750" in card
    guide = load_model(CLASSIFIER)
    assert guide.space.model == "tiny" and guide.space.latent_shape == (4, 8, 8)


def test_they_steer_the_model_they_read_and_refuse_another(trained, tmp_path):
    model = load_model("tiny")
    for spec in (SteerSpec("classifier", 5.0, CLASSIFIER),
                 SteerSpec("clip", 5.0, CLIP_NOISED)):  # fmt: skip
        steered_model = steered(model, spec)
        a = steered_model(["a red circle in the top left", "two blue squares"], seeds=[1, 2])
        b = model(["a red circle in the top left", "two blue squares"], seeds=[1, 2])
        assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
        other = tiny_model(seed=1)  # other autoencoder weights: another latent space
        with pytest.raises(ValueError, match="reads the noised latents of tiny"):
            steered(other, spec)
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "a hexagon",
            "--model",
            "tiny",
            "--classifier-guidance",
            "3",
            "--classifier-model",
            CLASSIFIER,
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "classifier guidance reads shapes-world prompts" in (
        result.output
    ), result.output
