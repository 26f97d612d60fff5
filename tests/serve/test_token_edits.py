"""/v1/inpaint and /v1/outpaint with the token models: a job that keeps the source's pixels and
records the kind's options, and a 422 naming the field for what a token model cannot take."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from atelier.kinds.tokenizer import save_tokenizer
from atelier.serve.app import ServeSettings, create_app
from tests.pipelines.token_models import install_token_models, tiny_tokenizer
from tests.serve.test_api import png_b64, wait


def scene(width: int = 16, height: int = 16) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((220, 30, 30), (2, 2, 9, 9))
    return image


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    models = install_token_models(tmp_path / "home" / "models")
    save_tokenizer(tiny_tokenizer(), models / "tiny-tok", card="# tok\n")
    with TestClient(create_app(ServeSettings(model="tiny-maskgit", output=tmp_path / "s"))) as c:
        yield c


def refused(response, field: str, message: str) -> None:
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"][-1] == field and message in problem["msg"], problem


def fetched(client, view) -> np.ndarray:
    assert view["status"] == "done", view
    return np.asarray(Image.open(io.BytesIO(client.get(view["images"][0]["url"]).content)))


def test_inpaint_with_a_token_model(client):
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (8, 0, 16, 16))
    body = {"prompt": "a red circle", "image": png_b64(scene()), "mask": png_b64(mask),
            "seed": 3, "guidance": 2.0, "options": {"steps": 3, "temperature": 0.5}}  # fmt: skip
    r = client.post("/v1/inpaint", json=body)
    assert r.status_code == 202, r.text
    view = wait(client, r.json()["id"])
    text = view["images"][0]["parameters"]
    assert "Mode: inpaint" in text and "Steps: 3" in text and "Temperature: 0.5" in text
    assert "Model: tiny-maskgit" in text and "CFG scale: 2.0" in text
    np.testing.assert_array_equal(fetched(client, view)[:, :8], np.asarray(scene())[:, :8])
    dalle = {**body, "model": "tiny-dalle", "options": {"top_k": 4}}
    assert wait(client, client.post("/v1/inpaint", json=dalle).json()["id"])["status"] == "done"
    refused(client.post("/v1/inpaint", json={**body, "sampler": "euler"}), "options",
            "tiny-maskgit takes no sampler option")  # fmt: skip
    refused(client.post("/v1/inpaint", json={**dalle, "steps": 4}), "options",
            "tiny-dalle takes no steps option")  # fmt: skip
    refused(client.post("/v1/inpaint", json={**body, "method": "trained"}), "method",
            "inpaints by masking the tokens of the region")  # fmt: skip
    big = {**body, "image": png_b64(scene(32, 32)), "mask": png_b64(mask.resize((32, 32)))}
    refused(client.post("/v1/inpaint", json=big), "image",
            "the image is 32x32 but this token model edits 16x16 px images only")  # fmt: skip
    wrong = client.post("/v1/inpaint", json={**body, "model": "tiny-tok"})
    assert wrong.status_code == 404 and "neither inpaints nor outpaints" in wrong.text


def test_outpaint_with_a_token_model(client):
    body = {"prompt": "a red circle", "image": png_b64(scene(12, 16)), "right": 4, "seed": 1,
            "model": "tiny-dalle", "options": {"top_k": 4}}  # fmt: skip
    r = client.post("/v1/outpaint", json=body)
    assert r.status_code == 202, r.text
    view = wait(client, r.json()["id"])
    text = view["images"][0]["parameters"]
    assert "Mode: outpaint" in text and "Right: 4" in text and "Top k: 4" in text
    pixels = fetched(client, view)
    assert pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(pixels[:, :12], np.asarray(scene(12, 16)))
    refused(client.post("/v1/outpaint", json={**body, "right": 8}), "image",
            "left + right must add up to 4 and top + bottom to 0")  # fmt: skip
    refused(client.post("/v1/outpaint", json={**body, "options": {"schedule": "linear"}}),
            "options", "tiny-dalle takes no schedule option")  # fmt: skip
