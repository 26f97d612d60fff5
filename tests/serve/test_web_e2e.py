"""The page's oldest flows end to end in headless Chromium: generate (Ctrl+Enter) and read the
image's parameters, send it to inpainting and paint a mask, cancel a running job, see a 422's
validation errors as a readable line, make an unCLIP model's variations of an uploaded image,
and tag a prompt with a LoRA. The server's content security policy is in force: the page must
work under it. Shared set-up, and what a first-time user sees: ``browser.py``, ``test_page.py``.
"""

from __future__ import annotations

import pytest

from tests.serve.browser import CHROMIUM, FLAGS, installed_home, need_chromium, serving, shoot
from tests.serve.browser import wait_until as until

playwright = need_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from atelier.serve.app import ServeSettings

    with (
        installed_home(tmp_path_factory) as (_, folder),
        serving(ServeSettings(model=str(folder), output=tmp_path_factory.mktemp("out"))) as url,
    ):
        yield url


@pytest.fixture
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        until(page, "document.getElementById('model').options.length > 0")
        yield page
        browser.close()


def test_generate_inpaint_and_cancel_in_the_browser(page):
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.fill("#prompt", "a red circle above a blue square")
    page.fill("#steps", "3")
    page.fill("#seed", "7")
    page.select_option("#size", "32")  # the tiny test model's size
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    card = page.locator(".card").first
    card.wait_for(timeout=60_000)
    params = card.locator("pre.parameters").text_content()
    assert "a red circle above a blue square" in params and "Seed: 7" in params
    # Left empty, the sampler and guidance are the model's own (the tiny model's: Euler, 2.0).
    assert "Steps: 3, Sampler: Euler, CFG scale: 2.0," in params
    assert card.locator("img").evaluate("img => img.naturalWidth") == 32

    # Inpaint: send the generated image, paint a mask stroke, generate.
    card.locator("button[data-to=inpaint]").click()
    until(page, "document.getElementById('imageCanvas').width === 32")
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
    page.click("#moreBox summary")
    page.fill("#rescale", "0.5")
    page.click("#generate")
    page.locator(".card").nth(1).wait_for(timeout=60_000)
    inpainted = page.locator(".card pre.parameters").first.text_content()
    assert "Mode: inpaint" in inpainted and "Guidance rescale: 0.5" in inpainted

    # Cancel a long job while it runs, from the queue.
    page.click("#tab-txt2img")
    page.fill("#steps", "100")
    page.click("#generate")
    until(page, "document.getElementById('status').textContent.startsWith('step')")
    page.locator("#queue li").first.locator("button.cancel").click()
    until(page, "document.getElementById('status').textContent === 'cancelled'")
    assert page.locator(".card").count() == 2

    # A request past the server's limit: the 422's validation errors as a readable line (the
    # box's own bound is lifted to reach the server).
    page.evaluate("document.getElementById('steps').removeAttribute('max')")
    page.fill("#steps", "150")
    page.click("#generate")
    until(page, "document.getElementById('status').className === 'error'")
    shown = page.locator("#status").text_content()
    assert shown.startswith("steps: ") and "100" in shown and "{" not in shown
    assert not [line for line in console if "Content Security Policy" in line], console


def test_the_page_refuses_steps_past_the_limit_before_sending(page):
    page.fill("#prompt", "a red circle")
    page.fill("#steps", "150")
    page.click("#generate")
    until(page, "document.getElementById('status').className === 'error'")
    assert page.locator("#status").text_content().startswith("Steps: ")
    assert page.locator("#queue li").count() == 0


def test_variations_of_an_uploaded_image_with_an_unclip_model(page, tmp_path):
    from PIL import Image

    source = tmp_path / "source.png"
    image = Image.new("RGB", (32, 32), (240, 240, 240))
    image.paste((200, 30, 30), (4, 4, 20, 20))
    image.save(source)
    page.click("#tab-variations")
    assert page.locator("#variationsHint").is_visible()
    assert not page.locator("#strength").is_visible()  # img2img's
    assert not page.locator("#brush").is_visible()  # inpainting's
    # Only unCLIP models make variations: the picker offers those alone (the shipped one too).
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == [
        "shapes-unclip",
        "tiny-unclip",
    ]
    page.select_option("#model", "tiny-unclip")
    assert "kind unclip" in page.locator("#modelKind").text_content()
    page.click("#generate")  # no source yet: the page says what to do
    until(page, "document.getElementById('status').className === 'error'")
    assert "choose a source image" in page.locator("#status").text_content()
    page.set_input_files("#source", str(source))
    until(page, "document.getElementById('imageCanvas').width === 32")
    assert page.locator("#sourceView").is_visible()
    page.fill("#steps", "2")
    page.fill("#seed", "4")
    page.fill("#count", "2")
    page.click("#generate")  # no prompt: a variation's caption is optional
    page.locator(".card").nth(1).wait_for(timeout=60_000)
    until(page, "document.getElementById('status').textContent === 'done'")
    cards = page.locator(".card pre.parameters")
    texts = [cards.nth(k).text_content() for k in range(2)]
    assert all("Mode: variations" in t and "Model: tiny-unclip" in t for t in texts), texts
    # One job's images read in seed order, first to last (newer jobs come above them).
    assert "Seed: 4" in texts[0] and "Seed: 5" in texts[1], texts
    assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 16
    shoot(page, "11-variations")


def test_the_lora_picker_tags_the_prompt_and_lists_learned_words(page):
    until(page, "!document.getElementById('adapterRow').hidden")
    assert "zqx (tiny-words)" in page.locator("#adapterHint").inner_text()
    assert "tiny-lora (for tiny)" in page.locator("#lora").inner_text()
    page.fill("#prompt", "a red zqx")
    page.select_option("#lora", "tiny-lora")
    assert page.input_value("#prompt") == "a red zqx <lora:tiny-lora:1>"
    assert page.input_value("#lora") == ""  # ready to add another
    page.fill("#steps", "2")
    page.click("#generate")
    page.locator(".card").first.wait_for(timeout=60_000)
    params = page.locator(".card pre.parameters").first.text_content()
    assert "a red zqx <lora:tiny-lora:1>" in params
