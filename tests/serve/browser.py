"""What the page's browser tests share: a live server of tiny models of every family on a free
port, headless Debian Chromium through Playwright, and screenshots at a desktop's and a
phone's width for people to look at (``out/page-shots``).

The server's content security policy is in force, so Playwright's ``wait_for_function``
(which evaluates strings) would be blocked: :func:`wait_until` polls through the DevTools
protocol instead.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path("out/page-shots")
WIDTHS = {"desktop": 1280, "phone": 420}
# A card like a trained model's: a summary line and a shapes-bench table the API digests.
TINY_CARD = """# tiny

Trained by atelier from scratch on the shapes world.

- Training CPU time: 0.01 h (user + system, all sessions)

## shapes-bench

```
category                           seen             held_out                  all
overall                0.74 [0.70,0.79]     0.21 [0.15,0.27]     0.61 [0.57,0.65]
```
"""


def need_chromium():
    """The Playwright module, or the test module skipped when Chromium or Playwright is
    missing (``make test`` installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian chromium is not installed (make test installs it)",
                    allow_module_level=True)  # fmt: skip
    return sync_api


def wait_until(page, expression: str, timeout_s: float = 60.0) -> None:
    """Poll a JavaScript expression until it is true."""
    end = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < end, f"timed out waiting for {expression}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_models(home: Path, model_card: str = TINY_CARD) -> Path:
    """Tiny models of every family under ``home``: the diffusion model (returned: the server's
    default, a folder), a LoRA and an embedding for it, unCLIP, DALL-E, MaskGIT, the GAN and
    the 32 -> 64 upscaler by their names. ``ATELIER_HOME`` must point at ``home``."""
    import torch

    from atelier.diffusion.options import SamplingOptions
    from atelier.eval.examples import write_examples
    from atelier.kinds import adapters
    from atelier.kinds.diffusion import load_diffusion, save_model
    from atelier.kinds.folder import read_config
    from atelier.kinds.gan import save_gan
    from atelier.kinds.upscaler import UpscalerConfig, save_upscaler
    from atelier.models.lora import LoRAConfig, LoRANetwork
    from atelier.models.unet import UNet
    from atelier.text.embeddings import TokenVectors
    from tests.models.test_unet import perturb
    from tests.pipelines.conftest import tiny_model
    from tests.pipelines.test_cascade import TINY_UNET
    from tests.pipelines.test_gan_generate import tiny_gan
    from tests.pipelines.token_models import install_token_models
    from tests.pipelines.unclip_models import install_unclip

    models = home / "models"
    folder = home / "default" / "tiny"
    save_model(tiny_model(), folder, card=model_card)
    install_unclip(models)
    install_token_models(models)
    gan = tiny_gan()
    save_gan(gan, models / gan.name, card="# tiny-gan\n")
    write_examples(models / gan.name)  # one model with an example grid for the picker
    fast = SamplingOptions(steps=2, guidance=1.0, sampler="euler")
    config = UpscalerConfig("shapes-sr-32-64", 32, 64, TINY_UNET, defaults=fast)
    save_upscaler(UNet(TINY_UNET), config, models / "shapes-sr-32-64", card="# sr\n")

    model = load_diffusion(folder, read_config(folder))
    network = LoRANetwork.create(model.adapter_parts(), LoRAConfig(rank=2))
    perturb(network, seed=3)
    adapters.save_lora(network, adapters.loras_dir() / "tiny-lora", name="tiny-lora",
                       card="# t\n", info={"base": "tiny", "token": "sks"})  # fmt: skip
    words = TokenVectors(["zqx"], torch.randn(1, model.text_encoder.dim))
    adapters.save_embeddings(words, adapters.embeddings_dir() / "tiny-words", card="# w\n",
                             info={"base": "tiny"})  # fmt: skip
    return folder


@contextmanager
def installed_home(tmp_path_factory):
    """A fresh ``ATELIER_HOME`` holding :func:`install_models`' tiny models, for a test
    module: yields (home, the default model's folder), and restores the environment after."""
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("ATELIER_HOME", str(home))
    try:
        yield home, install_models(home)
    finally:
        patch.undo()


@contextmanager
def serving(settings):
    """``create_app(settings)`` served by uvicorn on a free port: yields its base URL."""
    import uvicorn

    from atelier.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def shoot(page, name: str, *, full_page: bool = True) -> None:
    """Screenshots of ``page`` (the whole page, or the first screen) at a desktop's and a
    phone's width, and a check that neither scrolls sideways; the viewport is left at the
    desktop's."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)  # a frame for the layout to settle
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} scrolls sideways at {width} px ({wide} px wide)"
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=full_page)
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})
