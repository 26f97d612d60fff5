"""A new family plugs in at one place: a toy "constant colour" kind, defined here and added to the
registry with one line, is loadable by `generate`, listed by GET /v1/models and the page, and
refused with a clear error for an option its kind does not take."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from atelier.cli import app
from atelier.digest import state_digest
from atelier.kinds.base import Facts, ModelKind, option_specs
from atelier.kinds.folder import save_weights, write_folder
from atelier.kinds.registry import KINDS
from atelier.pipelines.metadata import read_params
from atelier.safeload import load_weights
from atelier.serve.app import ServeSettings, create_app


@dataclass(frozen=True)
class ConstantOptions:
    brightness: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.brightness <= 1:
            raise ValueError(f"brightness must be in [0, 1], got {self.brightness}")


class Colour(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rgb = nn.Parameter(torch.zeros(3))


@dataclass
class ConstantModel:
    """Draws every prompt as one flat colour: the whole text-to-image contract, no network."""

    name: str
    resolution: int
    colour: Colour
    path: Path | None = None
    defaults: ConstantOptions = ConstantOptions()

    @property
    def model_hash(self) -> str:
        return state_digest(("colour", self.colour), length=10)

    def __call__(self, prompts: Sequence[str], *, seeds: Sequence[int], negative_prompt: str = "",
                 options: Any = None, callback: Callable | None = None,
                 size: int | None = None) -> list[Image.Image]:  # fmt: skip
        options = options or self.defaults
        side = size or self.resolution
        rgb = (self.colour.rgb.detach() * options.brightness * 255).round().to(torch.uint8)
        if callback is not None:
            callback(SimpleNamespace(i=0, total=1))
        return [Image.fromarray(np.tile(rgb.numpy(), (side, side, 1))) for _ in prompts]


class ConstantKind(ModelKind):
    label = "constant-colour model"

    def load(self, folder, config, *, device="cpu") -> ConstantModel:
        colour = Colour()
        load_weights(colour, folder / "colour.safetensors")
        return ConstantModel(config["name"], config["resolution"], colour, folder)

    def save(self, model, folder, *, card, dtype=torch.float32):
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_weights(model.colour, Path(folder) / "colour.safetensors", dtype=dtype)
        config = {"kind": "constant", "name": model.name, "resolution": model.resolution}
        return write_folder(folder, config, card)

    def facts(self, config) -> Facts:
        return Facts("constant colour", config["resolution"], True, option_specs(ConstantOptions))

    def modules(self, model):
        return {"colour": model.colour}

    def renamed(self, model, name):
        return ConstantModel(name, model.resolution, model.colour, model.path)


@pytest.fixture
def constant(tmp_path, monkeypatch) -> Path:
    """The kind registered (the one registry line) and a folder of it installed by name."""
    monkeypatch.setitem(KINDS, "constant", ConstantKind())
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    colour = Colour()
    colour.rgb.data = torch.tensor([1.0, 0.5, 0.0])
    folder = tmp_path / "home" / "models" / "orange"
    ConstantKind().save(ConstantModel("orange", 16, colour), folder, card="# orange\n")
    return folder


def test_generate_loads_the_new_kind_and_replays_it(constant, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", "anything", "--model", "orange", "-o", str(out),
                                 "--option", "brightness=0.5", "--seed", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.png")
    assert Image.open(path).getpixel((0, 0)) == (128, 64, 0)
    params = read_params(path)
    assert params.options == {"brightness": 0.5} and params.model == "orange"
    assert "Brightness: 0.5" in Image.open(path).text["parameters"]
    replay = runner.invoke(app, ["replay", str(path)])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
    shown = runner.invoke(app, ["inspect", "orange"])
    assert shown.exit_code == 0 and "constant colour (kind 'constant')" in shown.output
    assert "brightness (float): 1.0" in shown.output


def test_an_option_the_kind_does_not_take_is_refused_clearly(constant):
    runner = CliRunner()
    for args, problem in (
        (["--steps", "5"], "orange takes no steps option; its options: brightness"),
        (["--option", "temperature=2"], "orange takes no temperature option"),
        (["--option", "brightness=abc"], "option brightness takes a finite number, got 'abc'"),
        (["--option", "brightness=2"], "brightness must be in [0, 1], got 2.0"),
    ):
        result = runner.invoke(app, ["generate", "x", "--model", "orange", *args])
        assert result.exit_code == 2 and problem in result.output, (args, result.output)
        assert "Traceback" not in result.output
    picture = constant.parent / "picture.png"
    Image.new("RGB", (16, 16), "red").save(picture)
    edit = runner.invoke(app, ["variations", str(picture), "--model", "orange"])
    assert edit.exit_code == 2 and "editing needs a diffusion model" in edit.output
    assert "orange is a constant-colour model, not a text-to-image diffusion model" in edit.output


def test_the_api_lists_it_and_validates_its_options(constant, tmp_path):
    client = TestClient(create_app(ServeSettings(model="orange", output=tmp_path / "served")))
    listed = {m["name"]: m for m in client.get("/v1/models").json()}
    assert listed["orange"]["kind"] == "constant" and listed["orange"]["default"]
    assert listed["orange"]["options"] == [
        {"name": "brightness", "type": "float", "default": 1.0, "choices": None,
         "minimum": None, "maximum": None}
    ]  # fmt: skip
    assert listed["orange"]["tasks"] == ["txt2img"]  # a new text-to-image family draws
    bad = client.post("/v1/txt2img", json={"prompt": "x", "steps": 4})
    assert bad.status_code == 422 and "orange takes no steps option" in json.dumps(bad.json())
    good = client.post("/v1/txt2img", json={"prompt": "x", "options": {"brightness": 0.5}})
    assert good.status_code == 202
    for _ in range(200):
        view = client.get(good.json()["status_url"]).json()
        if view["status"] == "done":
            break
        time.sleep(0.05)
    assert view["status"] == "done" and "Brightness: 0.5" in view["images"][0]["parameters"]


def test_the_page_offers_it_with_its_own_options(constant, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from tests.serve.browser import CHROMIUM, FLAGS, wait_until

    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian chromium is not installed (make test installs it)")
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ServeSettings(model="shapes-ldm-minilm", output=tmp_path / "served")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            wait_until(page, "document.getElementById('model').options.length > 1")
            page.select_option("#model", "orange")
            assert "constant colour" in page.locator("#modelKind").inner_text()
            assert page.locator("#steps").is_hidden() and page.locator("#sampler").is_hidden()
            page.fill("#opt-brightness", "0.5")
            page.fill("#prompt", "anything")
            page.click("#generate")
            page.locator(".card").first.wait_for(timeout=30_000)
            assert "Brightness: 0.5" in page.locator(".card pre.parameters").first.text_content()
            page.select_option("#model", "shapes-ldm-minilm")
            assert page.locator("#steps").is_visible()
            assert page.locator("#opt-brightness").count() == 0
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=5)
