"""The server's job runners without HTTP: a batch of jobs in, saved PNGs and results out."""

import pytest

from atelier.kinds.diffusion import save_model
from atelier.kinds.registry import load_text_to_image
from atelier.pipelines.metadata import read_params
from atelier.serve.jobs import Job
from atelier.serve.runners import Models, Runners, ServeSettings, request_options
from atelier.serve.schemas import Txt2ImgRequest
from tests.pipelines.conftest import tiny_model


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\n")
    settings = ServeSettings(model=str(folder), output=tmp_path_factory.mktemp("out"))
    return Runners(settings, Models(default=settings.model))


def test_a_batch_of_jobs_gives_each_its_own_images(runners):
    jobs = [
        Job("txt2img", Txt2ImgRequest(prompt="a red circle", seed=3, n=2, steps=2), None),
        Job("txt2img", Txt2ImgRequest(prompt="a blue square", seed=8, steps=2), None),
    ]
    steps = []
    results = runners.txt2img(jobs, lambda info, preview=None: steps.append(info.i))
    assert [len(r) for r in results] == [2, 1] and steps == [0, 1]
    assert [im.seed for r in results for im in r] == [3, 4, 8]
    first = read_params(runners.settings.output / results[0][0].url.split("/")[-1])
    assert first.prompt == "a red circle" and first.options["steps"] == 2
    assert first.model == "tiny" and "Steps: 2" in results[0][0].parameters


def test_request_options_are_the_kinds_own(runners, tmp_path):
    model = runners.models.text_to_image(runners.settings.model)
    req = Txt2ImgRequest(prompt="x", steps=5, options={"karras": True})
    options = request_options(model, req)
    assert (options.steps, options.karras, options.sampler) == (5, True, "euler")
    save_model(tiny_model(sampler="dpmpp_2m_sde"), tmp_path / "sde", card="# sde\n")
    stochastic = load_text_to_image(tmp_path / "sde")
    assert request_options(stochastic, req).sampler == "dpmpp_2m_sde"
    # img2img keeps its source: the model's sampler without per-step noise.
    assert request_options(stochastic, req, keeps_source=True).sampler == "dpmpp_2m"
    with pytest.raises(ValueError, match="tiny takes no temperature option; its options: steps"):
        request_options(model, Txt2ImgRequest(prompt="x", options={"temperature": 1.0}))


def test_a_request_names_an_installed_model_not_a_folder(runners):
    for name in (".", "..", "tmp"):
        with pytest.raises(FileNotFoundError, match="GET /v1/models lists them"):
            runners.models.text_to_image(name)
