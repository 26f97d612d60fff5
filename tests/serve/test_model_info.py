"""GET /v1/models as the page's model picker reads it: each model's tasks, LoRA use and inpaint
method, its options with the model's own defaults and their bounds, and its card's summary and
headline figures."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from atelier.kinds.card import card_figures, card_summary
from atelier.serve.app import ServeSettings, create_app
from atelier.serve.runners import serves
from tests.serve.browser import installed_home


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with installed_home(tmp_path_factory) as (_, folder):
        settings = ServeSettings(model=str(folder), output=tmp_path_factory.mktemp("out"))
        with TestClient(create_app(settings)) as client:
            yield client


@pytest.fixture(scope="module")
def listed(client):
    return {m["name"]: m for m in client.get("/v1/models").json()}


def options(model: dict) -> dict:
    return {o["name"]: o for o in model["options"]}


def test_each_model_says_which_endpoints_take_it(listed):
    assert listed["tiny"]["tasks"] == ["txt2img", "img2img", "inpaint", "outpaint"]
    assert listed["tiny"]["loras"] and listed["tiny"]["inpaint_method"] == "masked"
    assert listed["tiny-dalle"]["tasks"] == ["txt2img", "inpaint", "outpaint"]
    assert not listed["tiny-dalle"]["loras"]
    assert listed["tiny-gan"]["tasks"] == ["txt2img"]
    assert listed["tiny-unclip"]["tasks"] == ["txt2img", "variations"]
    assert listed["shapes-sr-32-64"]["tasks"] == ["upscale"]
    assert listed["shapes-clip"]["tasks"] == []  # listed, but no endpoint draws with it


def test_options_carry_the_models_own_defaults_and_their_bounds(listed):
    steps = options(listed["tiny"])["steps"]
    assert steps["default"] == 4 and steps["minimum"] == 1 and steps["maximum"] is None
    assert options(listed["tiny"])["sampler"]["default"] == "euler"
    rescale = options(listed["tiny"])["guidance_rescale"]
    assert (rescale["minimum"], rescale["maximum"]) == (0.0, 1.0)
    truncation = options(listed["tiny-gan"])["truncation"]
    assert (truncation["minimum"], truncation["maximum"]) == (0.0, 1.0)
    dalle = options(listed["tiny-dalle"])
    assert dalle["top_k"]["minimum"] == 0 and dalle["top_p"]["maximum"] == 1.0
    assert "steps" not in dalle and options(listed["tiny-maskgit"])["steps"]["minimum"] == 1


def test_the_card_gives_a_summary_and_headline_figures(listed):
    tiny = listed["tiny"]
    assert tiny["summary"] == "Trained by atelier from scratch on the shapes world."
    assert tiny["figures"] == [
        {"name": "shapes-bench accuracy", "value": "0.61 [0.57, 0.65]"},
        {"name": "on held-out prompts", "value": "0.21 [0.15, 0.27]"},
        {"name": "training", "value": "0.01 CPU-h"},
    ]
    assert listed["tiny-gan"]["summary"] == "" and listed["tiny-gan"]["figures"] == []


def test_an_inpainting_unet_serves_only_trained_inpainting():
    config = {"kind": "latent", "unet": {"in_channels": 9, "out_channels": 4}}
    does = serves(config, text_to_image=True)
    assert does.tasks == ("inpaint",) and does.inpaint_method == "trained"
    assert serves({"kind": "vae"}, text_to_image=False).tasks == ()
    assert serves({"kind": "a-new-family"}, text_to_image=True).tasks == ("txt2img",)


def test_a_long_summary_is_cut_at_a_sentence(tmp_path):
    first = "Trained by atelier on the shapes world: " + "a long story. " * 30
    (tmp_path / "README.md").write_text(f"# m\n\n{first}\n\n## Training cost\n\n- 1 CPU-h\n")
    summary = card_summary(tmp_path)
    assert len(summary) <= 240 and summary.endswith("story.")
    assert card_figures(tmp_path) == []
    assert card_summary(tmp_path / "nowhere") == "" and card_figures(tmp_path / "nowhere") == []


def test_a_models_example_grid_is_listed_and_served_by_name_only(client, listed):
    assert listed["tiny-gan"]["examples"] == "/v1/models/tiny-gan/examples.png"
    assert listed["tiny"]["examples"] is None  # its folder has none
    r = client.get("/v1/models/tiny-gan/examples.png")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("tiny", "no-such-model", "..%2F..%2Fetc", "tiny-gan%2F..%2Ftiny"):
        assert client.get(f"/v1/models/{name}/examples.png").status_code == 404, name
