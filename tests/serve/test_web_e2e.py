"""The web page end to end in headless Chromium driven by Playwright.

It types a prompt, generates (Ctrl+Enter), sees the image appear with its parameters, paints a
mask on it, inpaints, and cancels a running job; and it makes an unCLIP model's variations of an
uploaded image, after the default diffusion model is refused for them. Screenshots go to
``out/e2e`` for people to look at. The server's content security policy is in force: the page
must work under it (and Playwright's ``wait_for_function``, which evaluates strings, would
not). Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package;
``make test`` installs both.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path("out/e2e")

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
if shutil.which(CHROMIUM) is None:
    pytest.skip("Debian chromium is not installed (make test installs it)", allow_module_level=True)


def wait_until(page, expression: str, timeout_s: float = 60.0) -> None:
    """Poll a JavaScript expression until it is true (``page.evaluate`` runs it through the
    DevTools protocol, which the page's policy against eval does not block)."""
    end = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < end, f"timed out waiting for {expression}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_adapters(folder: Path) -> None:
    """A LoRA and an embedding for the tiny model, installed by name (ATELIER_HOME is set)."""
    import torch

    from atelier.kinds import adapters
    from atelier.kinds.diffusion import load_diffusion
    from atelier.kinds.folder import read_config
    from atelier.models.lora import LoRAConfig, LoRANetwork
    from atelier.text.embeddings import TokenVectors
    from tests.models.test_unet import perturb

    model = load_diffusion(folder, read_config(folder))
    network = LoRANetwork.create(model.adapter_parts(), LoRAConfig(rank=2))
    perturb(network, seed=3)
    adapters.save_lora(network, adapters.loras_dir() / "tiny-lora", name="tiny-lora",
                       card="# t\n", info={"base": "tiny", "token": "sks"})  # fmt: skip
    words = TokenVectors(["zqx"], torch.randn(1, model.text_encoder.dim))
    adapters.save_embeddings(words, adapters.embeddings_dir() / "tiny-words", card="# w\n",
                             info={"base": "tiny"})  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from atelier.kinds.diffusion import save_model
    from atelier.serve.app import ServeSettings, create_app
    from tests.pipelines.conftest import tiny_model
    from tests.pipelines.unclip_models import install_unclip

    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\n")
    # The tiny unCLIP model installed by name (tiny-unclip), for the variations tab.
    home = tmp_path_factory.mktemp("home")
    install_unclip(home / "models")
    patch = pytest.MonkeyPatch()
    patch.setenv("ATELIER_HOME", str(home))
    install_adapters(folder)
    app = create_app(ServeSettings(model=str(folder), output=tmp_path_factory.mktemp("out")))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=5)
    patch.undo()


def test_generate_inpaint_and_cancel_in_the_browser(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(server)
        page.fill("#prompt", "a red circle above a blue square")
        page.fill("#steps", "3")
        page.fill("#seed", "7")
        page.select_option("#size", "32")  # the tiny test model's size
        page.focus("#prompt")
        page.keyboard.press("Control+Enter")
        card = page.locator(".card").first
        card.wait_for(timeout=60_000)
        params = card.locator("pre.parameters").inner_text()
        assert "a red circle above a blue square" in params and "Seed: 7" in params
        # Left empty, the sampler and guidance are the model's own (the tiny model's: Euler, 2.0).
        assert "Steps: 3, Sampler: Euler, CFG scale: 2.0," in params
        assert card.locator("img").evaluate("img => img.naturalWidth") == 32
        page.screenshot(path=str(SHOTS / "1-generated.png"))

        # Inpaint: take the generated image, paint a mask stroke, generate.
        card.locator("button", has_text="Edit this").click()
        wait_until(page, "document.getElementById('imageCanvas').width === 32")
        page.locator("#maskCanvas").scroll_into_view_if_needed()
        box = page.locator("#maskCanvas").bounding_box()
        page.mouse.move(box["x"] + 150, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 220, box["y"] + 200, steps=8)
        page.mouse.up()
        painted = page.evaluate(
            "() => { const c = document.getElementById('maskCanvas');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"
        )
        assert painted > 20
        page.fill("#prompt", "a red circle and a green triangle")
        page.fill("#rescale", "0.5")
        page.click("#generate")
        page.locator(".card").nth(1).wait_for(timeout=60_000)
        inpainted = page.locator(".card pre.parameters").first.inner_text()
        assert "Mode: inpaint" in inpainted and "Guidance rescale: 0.5" in inpainted
        page.screenshot(path=str(SHOTS / "2-inpainted.png"))

        # Cancel a long job while it runs.
        page.click("#tab-txt2img")
        page.fill("#steps", "100")
        page.click("#generate")
        wait_until(page, "document.getElementById('status').textContent.startsWith('step')")
        page.click("#cancel")
        wait_until(page, "document.getElementById('status').textContent === 'cancelled'")
        assert page.locator(".card").count() == 2
        page.screenshot(path=str(SHOTS / "3-cancelled.png"))

        # A request past a limit: the 422's validation errors are shown as a readable line.
        page.fill("#steps", "150")
        page.click("#generate")
        wait_until(page, "document.getElementById('status').className === 'error'")
        shown = page.locator("#status").text_content()
        assert shown.startswith("steps: ") and "100" in shown and "{" not in shown
        assert not [line for line in console if "Content Security Policy" in line], console
        browser.close()


def test_variations_of_an_uploaded_image_with_an_unclip_model(server, tmp_path):
    from PIL import Image

    source = tmp_path / "source.png"
    image = Image.new("RGB", (32, 32), (240, 240, 240))
    image.paste((200, 30, 30), (4, 4, 20, 20))
    image.save(source)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server)
        wait_until(page, "document.getElementById('model').options.length >= 2")
        page.click("#tab-variations")
        assert page.locator("#variationsHint").is_visible()
        assert not page.locator("#strength").is_visible()  # img2img's
        assert not page.locator("#brush").is_visible()  # inpainting's
        page.set_input_files("#source", str(source))
        wait_until(page, "document.getElementById('imageCanvas').width === 32")
        # The default model is a diffusion model: refused, and the page says what to choose.
        page.click("#generate")
        wait_until(page, "document.getElementById('status').className === 'error'")
        assert "only an unCLIP model (kind unclip)" in page.locator("#status").text_content()
        page.select_option("#model", "tiny-unclip")
        assert "kind unclip" in page.locator("#modelKind").text_content()
        page.fill("#steps", "2")
        page.fill("#seed", "4")
        page.fill("#count", "2")
        page.click("#generate")  # no prompt: a variation's caption is optional
        page.locator(".card").nth(1).wait_for(timeout=60_000)
        wait_until(page, "document.getElementById('status').textContent === 'done'")
        cards = page.locator(".card pre.parameters")
        texts = [cards.nth(k).inner_text() for k in range(2)]
        assert all("Mode: variations" in t and "Model: tiny-unclip" in t for t in texts), texts
        assert {"Seed: 4" in t for t in texts} == {True, False}  # seeds 4 and 5
        assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 16
        page.screenshot(path=str(SHOTS / "4-variations.png"))
        browser.close()


def test_the_lora_picker_tags_the_prompt_and_lists_learned_words(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server)
        wait_until(page, "!document.getElementById('adapterRow').hidden")
        assert "zqx (tiny-words)" in page.locator("#adapterHint").inner_text()
        assert "tiny-lora (for tiny)" in page.locator("#lora").inner_text()
        page.fill("#prompt", "a red zqx")
        page.select_option("#lora", "tiny-lora")
        assert page.input_value("#prompt") == "a red zqx <lora:tiny-lora:1>"
        assert page.input_value("#lora") == ""  # ready to add another
        page.fill("#steps", "2")
        page.select_option("#size", "32")
        page.click("#generate")
        page.locator(".card").first.wait_for(timeout=60_000)
        params = page.locator(".card pre.parameters").first.inner_text()
        assert "a red zqx <lora:tiny-lora:1>" in params
        browser.close()
