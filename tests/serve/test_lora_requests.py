"""The API takes AUTOMATIC1111's <lora:NAME:WEIGHT> in a prompt, for LoRAs installed on the
server only, and refuses with 422 a malformed tag, an unknown name or a LoRA that does not fit."""

from __future__ import annotations

import pytest
import torch

from atelier.kinds.adapters import loras_dir, save_lora
from atelier.kinds.diffusion import load_diffusion
from atelier.kinds.folder import read_config
from atelier.models.lora import LoRAConfig, LoRANetwork
from tests.models.test_unet import perturb
from tests.serve.test_api import make_client, model_dir, wait  # noqa: F401 (fixture)


@pytest.fixture()
def installed(model_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    model = load_diffusion(model_dir, read_config(model_dir))
    network = LoRANetwork.create(model.adapter_parts(), LoRAConfig(rank=2))
    perturb(network, seed=3)
    save_lora(network, loras_dir() / "tiny-lora", name="tiny-lora", card="# t\n", info={})
    wrong = LoRANetwork.create({"unet": torch.nn.Sequential(torch.nn.Linear(3, 5))},
                               LoRAConfig(targets=("0",)))  # fmt: skip
    save_lora(wrong, loras_dir() / "other", name="other", card="# o\n", info={})
    return model_dir


def test_a_prompt_tag_runs_with_the_installed_lora(installed, tmp_path):
    with make_client(installed, tmp_path) as client:
        body = {"prompt": "a red circle <lora:tiny-lora:0.5>", "seed": 1, "steps": 2}
        r = client.post("/v1/txt2img", json=body)
        assert r.status_code == 202, r.text
        view = wait(client, r.json()["id"])
        assert view["status"] == "done", view


@pytest.mark.parametrize(
    "prompt, says",
    [
        ("a red circle <lora:nope:1>", "no LoRA named 'nope' on this server"),
        ("a red circle <lora:../../x:1>", "a name is 1 to 100"),
        ("a red circle <lora:tiny-lora:nan>", "the weight must be a number"),
        ("a red circle <lora:other:1>", "names no linear layer|for another model"),
    ],
)
def test_bad_tags_are_422(installed, tmp_path, prompt, says):
    with make_client(installed, tmp_path) as client:
        r = client.post("/v1/txt2img", json={"prompt": prompt, "steps": 2})
        assert r.status_code == 422, r.text
        assert any(part in r.text for part in says.split("|")), r.text


def test_adapters_are_listed_with_their_base_and_words(installed, tmp_path):
    from atelier.kinds.adapters import LORA_INFO

    (loras_dir() / "other" / LORA_INFO).write_text("{not json")  # still listed, without facts
    (loras_dir() / "tiny-lora" / LORA_INFO).write_text('{"base": "tiny", "token": "sks"}')
    with make_client(installed, tmp_path) as client:
        r = client.get("/v1/adapters")
        assert r.status_code == 200, r.text
        assert r.json() == [
            {"name": "other", "kind": "lora", "base": None, "words": []},
            {"name": "tiny-lora", "kind": "lora", "base": "tiny", "words": ["sks"]},
        ]
