"""POST /v1/variations: an unCLIP model's variations of an image (DALL-E 2) as a job, with the
tiny unCLIP model of ``tests/pipelines/unclip_models.py`` installed by name; a model of another
kind and a bad image are refused before anything is queued, and a batch of n gives the images
n single requests give."""

import base64
import io
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from atelier.kinds.diffusion import save_model
from atelier.kinds.registry import load_model
from atelier.serve.app import ServeSettings, create_app
from tests.pipelines.conftest import tiny_model
from tests.pipelines.unclip_models import install_unclip
from tests.serve.test_api import png_b64, wait

NAME = "tiny-unclip"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny unCLIP model (and its prior alone) and the tiny diffusion model, by name."""
    folder = tmp_path_factory.mktemp("home") / "models"
    install_unclip(folder)
    save_model(tiny_model(), folder / "tiny", card="# tiny\n")
    return folder


@pytest.fixture
def client(models, tmp_path, monkeypatch):
    """A server whose default model is the tiny diffusion model."""
    monkeypatch.setenv("ATELIER_HOME", str(models.parent))
    settings = ServeSettings(model=str(models / "tiny"), output=tmp_path / "served")
    with TestClient(create_app(settings)) as client:
        yield client


def source() -> Image.Image:
    image = Image.new("RGB", (32, 32), (240, 240, 240))
    image.paste((200, 30, 30), (4, 4, 20, 20))
    return image


def done(client, body) -> dict:
    r = client.post("/v1/variations", json=body)
    assert r.status_code == 202, r.text
    view = wait(client, r.json()["id"])
    assert view["status"] == "done", view
    return view


def pixels(client, image: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(client.get(image["url"]).content)))


def test_variations_of_an_image_with_an_unclip_model(client):
    body = {"image": png_b64(source()), "model": NAME, "seed": 4, "n": 2, "steps": 2}
    view = done(client, body)
    assert view["kind"] == "variations" and [im["seed"] for im in view["images"]] == [4, 5]
    text = view["images"][0]["parameters"]
    assert "Mode: variations" in text and "Steps: 2" in text and f"Model: {NAME}" in text
    first, second = (pixels(client, im) for im in view["images"])
    assert first.shape == (16, 16, 3) and not np.array_equal(first, second)
    # The job's images are the model's own variations at those seeds.
    model = load_model(NAME)
    expected = model.variations(source(), seeds=[4, 5], options=replace(model.defaults, steps=2))
    assert all(np.array_equal(p, np.asarray(e)) for p, e in zip((first, second), expected))
    # A caption and the kind's own options are taken; progress streams with previews.
    r = client.post("/v1/variations", json={**body, "n": 1, "prompt": "a red square",
                                            "options": {"sampler": "euler"}})  # fmt: skip
    with client.stream("GET", f"/v1/jobs/{r.json()['id']}/events") as stream:
        events = "".join(stream.iter_text())
    assert "event: done" in events and '"total": 2' in events and '"preview": "' in events
    assert "Sampler: Euler," in client.get(f"/v1/jobs/{r.json()['id']}").json()["images"][0][
        "parameters"]  # fmt: skip


def test_a_batch_gives_the_images_of_single_requests(client):
    body = {"image": png_b64(source()), "model": NAME, "steps": 2}
    batch = done(client, {**body, "seed": 7, "n": 3})["images"]
    for k, image in enumerate(batch):
        (alone,) = done(client, {**body, "seed": 7 + k, "n": 1})["images"]
        assert alone["seed"] == image["seed"] == 7 + k
        assert np.array_equal(pixels(client, alone), pixels(client, image))


def test_a_model_of_another_kind_is_refused_naming_the_fix(client):
    image = png_b64(source())
    for body in ({"image": image, "model": "tiny"}, {"image": image}):  # named, or the default
        r = client.post("/v1/variations", json=body)
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["body", "model"]
        assert "tiny is a latent diffusion model (kind latent)" in problem["msg"]
        assert "only an unCLIP model (kind unclip)" in problem["msg"]
    r = client.post("/v1/variations", json={"image": image, "model": "tiny-prior"})
    assert r.status_code == 422 and "kind unclip-prior" in r.text, r.text
    r = client.post("/v1/variations", json={"image": image, "model": "no-such-model"})
    assert r.status_code == 404 and "no model named 'no-such-model'" in r.text
    # What the unCLIP model's kind does not take is refused as on every endpoint.
    r = client.post("/v1/variations", json={"image": image, "model": NAME,
                                            "guidance_rescale": 0.5})  # fmt: skip
    assert r.status_code == 422 and "takes no guidance_rescale option" in r.text
    r = client.post("/v1/variations", json={"image": image, "model": NAME,
                                            "prompt": "<lora:x:1> a red circle"})  # fmt: skip
    assert r.status_code == 422 and "not a diffusion model" in r.text


@pytest.mark.parametrize(
    "image, message",
    [
        ("not base64!", "must be base64-encoded image bytes"),
        (base64.b64encode(b"garbage bytes").decode(), "not a readable image"),
        (png_b64(Image.new("RGB", (300, 300))), "over the limit of 65536 pixels"),
        (png_b64(Image.new("RGB", (4, 32))), "each side must be at least 8 pixels"),
    ],
)
def test_a_malformed_or_oversized_image_is_refused(client, image, message):
    r = client.post("/v1/variations", json={"image": image, "model": NAME})
    assert r.status_code == 422 and message in r.text, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "image"]


def test_the_request_is_bounded_like_every_other(client):
    image = png_b64(source())
    for change, field in (
        ({"n": 9}, "n"),
        ({"steps": 101}, "steps"),
        ({"seed": -1}, "seed"),
        ({"strength": 0.5}, "strength"),
        ({"prompt": "x" * 501}, "prompt"),
    ):
        r = client.post("/v1/variations", json={"image": image, "model": NAME, **change})
        assert r.status_code == 422 and field in r.text, (change, r.text)
    assert "/v1/variations" in client.get("/openapi.json").json()["paths"]
