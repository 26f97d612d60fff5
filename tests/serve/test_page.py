"""The web page as a first-time user meets it, in headless Chromium: what the first visit shows,
a model of each kind with its own options, every "send to" edit, the queue's cancel, the
gallery across a reload, a server with a token, and the API docs with the network cut off.
Screenshots at 1280 and 420 px go to ``out/page-shots`` (:func:`tests.serve.browser.shoot`).
"""

from __future__ import annotations

import pytest

from tests.serve.browser import CHROMIUM, FLAGS, installed_home, need_chromium, serving, shoot
from tests.serve.browser import wait_until as until

playwright = need_chromium()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with installed_home(tmp_path_factory) as installed:
        yield installed


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    from atelier.serve.app import ServeSettings

    with serving(ServeSettings(model=str(home[1]), output=tmp_path_factory.mktemp("out"))) as url:
        yield url


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def open_page(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url)
    until(page, "document.getElementById('model').options.length > 0")
    return page


def generate(page, cards_before: int) -> None:
    page.click("#generate")
    page.locator(".card").nth(cards_before).wait_for(timeout=60_000)
    until(page, "document.getElementById('status').textContent === 'done'")


def test_the_first_visit_reads_as_a_tool(browser, server):
    page = open_page(browser, server)
    # Nothing pretends to be running: no preview, no progress, no "step 0 / 0".
    assert not page.locator("#preview").is_visible() and not page.locator("#live").is_visible()
    assert page.locator("#status").text_content() == ""
    assert page.locator("#emptyGallery").is_visible()
    assert not page.locator("#tokenBox").is_visible()  # this server has no token
    # Placeholders are examples in italic grey, not text that looks typed.
    assert page.get_attribute("#prompt", "placeholder").startswith("e.g. ")
    style = page.evaluate("getComputedStyle(document.getElementById('prompt'), '::placeholder')"
                          ".fontStyle")  # fmt: skip
    assert style == "italic"
    assert page.get_attribute("#steps", "placeholder") == "default 4"  # the tiny model's own
    # A 10-digit seed fits its box.
    page.fill("#seed", "2147483647")
    assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.getElementById('seed'))")
    # Sizes ascend, the model's own chosen.
    sizes = page.eval_on_selector_all("#size option", "os => os.map(o => Number(o.value))")
    assert sizes == sorted(sizes) and 32 in sizes
    assert page.input_value("#size") == "32"
    assert "(the model's own)" in page.locator("#size option:checked").text_content()
    # The model card: kind, summary and headline figures.
    assert "kind latent" in page.locator("#modelKind").text_content()
    assert "from scratch" in page.locator("#modelSummary").text_content()
    figures = page.locator("#modelFigures").inner_text()
    assert "shapes-bench accuracy" in figures and "0.61 [0.57, 0.65]" in figures
    shoot(page, "1-first-visit")
    # The inpaint tab says what to do with its empty canvas.
    page.click("#tab-inpaint")
    assert page.locator("#canvasHint").is_visible()
    assert "paint over" in page.locator("#canvasHint").text_content()
    shoot(page, "2-inpaint-empty")


@pytest.mark.parametrize(
    "model, shown, hidden",
    [
        ("tiny-dalle", ["opt-temperature", "opt-top_k"], ["steps", "sampler", "opt-truncation"]),
        ("tiny-maskgit", ["steps", "opt-temperature"], ["sampler", "opt-top_k"]),
        ("tiny-gan", ["opt-truncation"], ["steps", "sampler", "guidance", "opt-temperature"]),
        ("tiny-unclip", ["steps", "sampler"], ["opt-truncation"]),
    ],
)
def test_each_kind_shows_its_own_options(browser, server, model, shown, hidden):
    page = open_page(browser, server)
    page.select_option("#model", model)
    for id in shown:
        assert page.locator(f"#{id}").count() == 1, id
    for id in hidden:
        assert page.locator(f"#{id}").count() == 0, id
    # Diffusion's own: the sampler list (filled from the API) and the size only it can change.
    assert not page.locator("#sizeRow").is_visible()
    assert not page.locator("#steerRow").is_visible()
    assert not page.locator("#adapterRow").is_visible()  # LoRAs adapt diffusion models only


def test_the_default_diffusion_model_takes_steps_sampler_lora_and_steering(browser, server):
    page = open_page(browser, server)
    samplers = page.eval_on_selector_all("#sampler option", "os => os.map(o => o.value)")
    assert "euler" in samplers and "dpmpp_2m" in samplers and samplers[0] == ""
    assert page.locator("#adapterRow").is_visible() and page.locator("#sizeRow").is_visible()
    page.click("#moreBox summary")
    assert page.locator("#steerRow").is_visible() and page.locator("#rescale").is_visible()


def test_a_gan_refuses_a_truncation_out_of_range_before_sending(browser, server):
    page = open_page(browser, server)
    page.select_option("#model", "tiny-gan")
    page.fill("#prompt", "a red circle")
    page.fill("#opt-truncation", "1.5")
    page.click("#generate")
    until(page, "document.getElementById('status').className === 'error'")
    assert page.locator("#status").text_content().startswith("Truncation ψ: ")
    assert page.get_attribute("#opt-truncation", "aria-invalid") == "true"
    assert page.locator("#queue li").count() == 0  # nothing was sent
    page.fill("#opt-truncation", "0.5")
    generate(page, 0)
    params = page.locator(".card pre.parameters").first.text_content()
    assert "Model: tiny-gan" in params and "Truncation: 0.5" in params
    shoot(page, "3-gan")


def test_generate_then_send_to_every_edit(browser, server):
    page = open_page(browser, server)
    page.fill("#prompt", "a red circle above a blue square")
    page.fill("#steps", "2")
    page.fill("#seed", "7")
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    page.locator(".card").first.wait_for(timeout=60_000)
    until(page, "document.getElementById('status').textContent === 'done'")
    first = page.locator(".card").first
    assert "Seed: 7" in first.locator("pre.parameters").text_content()
    assert first.locator("img").evaluate("img => img.naturalWidth") == 32
    assert first.locator(".caption").text_content() == "a red circle above a blue square"
    shoot(page, "4-generated")

    def send(to: str) -> None:
        page.locator(".card").last.locator(f"button[data-to={to}]").click()  # the txt2img one
        until(page, f"document.getElementById('tab-{to}').getAttribute('aria-selected') === 'true'")
        until(page, "document.getElementById('imageCanvas').width === 32")

    send("img2img")
    page.fill("#steps", "2")
    generate(page, 1)
    assert "Mode: img2img" in page.locator(".card pre.parameters").first.text_content()

    send("inpaint")
    assert not page.locator("#canvasHint").is_visible()
    page.click("#generate")  # nothing painted yet: the page says so
    until(page, "document.getElementById('status').textContent.includes('mask is empty')")
    box = page.locator("#maskCanvas").bounding_box()
    page.mouse.move(box["x"] + 150, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 220, box["y"] + 200, steps=8)
    page.mouse.up()
    page.fill("#steps", "2")
    generate(page, 2)
    assert "Mode: inpaint" in page.locator(".card pre.parameters").first.text_content()
    shoot(page, "5-inpainted")

    send("outpaint")
    page.fill("#steps", "2")
    page.fill("#padRight", "16")
    generate(page, 3)
    assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 48

    send("upscale")
    assert page.input_value("#model") == "shapes-sr-32-64"
    generate(page, 4)
    assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 64

    send("variations")  # only unCLIP models make them: the picker offers those alone
    models = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert models == ["shapes-unclip", "tiny-unclip"]  # the shipped one and the tiny one
    page.select_option("#model", "tiny-unclip")
    page.fill("#steps", "2")
    generate(page, 5)
    assert "Mode: variations" in page.locator(".card pre.parameters").first.text_content()
    modes = page.eval_on_selector_all(".card pre.parameters", "ps => ps.map(p => p.textContent"
                                      ".match(/Mode: (\\w+)/)?.[1] || 'txt2img')")  # fmt: skip
    assert modes == ["variations", "upscale", "outpaint", "inpaint", "img2img", "txt2img"]
    shoot(page, "6-sent-to-every-edit")


def test_cancel_from_the_queue_view(browser, server):
    page = open_page(browser, server)
    page.fill("#prompt", "a red circle")
    page.fill("#steps", "100")
    page.fill("#count", "8")  # long enough that the second job is seen waiting on a fast CPU
    page.click("#generate")
    page.fill("#steps", "99")  # other settings: a second job waits instead of joining the batch
    page.fill("#count", "1")
    page.click("#generate")
    until(page, "document.querySelectorAll('#queue li').length === 2")
    until(page, "document.querySelector('#queue li:last-child .state').textContent"
                ".startsWith('step')")  # fmt: skip
    shoot(page, "7-queue")
    running, waiting = page.locator("#queue li").last, page.locator("#queue li").first
    state = waiting.locator(".state").text_content()
    assert state.startswith("queued"), f"the first job ended early: {state!r}"
    waiting.locator("button.cancel").click()
    until(page, "document.querySelector('#queue li:first-child').dataset.status === 'cancelled'")
    running.locator("button.cancel").click()
    until(page, "document.querySelector('#queue li:last-child').dataset.status === 'cancelled'")
    assert page.locator(".card").count() == 0
    assert not page.locator("#queue button.cancel").first.is_visible()


def test_the_gallery_survives_a_reload(browser, server):
    page = open_page(browser, server)
    page.fill("#prompt", "a green triangle")
    page.fill("#steps", "2")
    generate(page, 0)
    page.reload()
    until(page, "document.querySelectorAll('.card img').length === 1")
    until(page, "document.querySelector('.card img').naturalWidth === 32")
    assert page.locator(".card .caption").text_content() == "a green triangle"
    assert not page.locator("#emptyGallery").is_visible()
    shoot(page, "8-after-reload")
    page.click("#clearHistory")
    page.reload()
    until(page, "document.getElementById('model').options.length > 0")
    assert page.locator(".card").count() == 0 and page.locator("#emptyGallery").is_visible()


def test_a_token_is_asked_for_once_and_used_for_every_call(browser, home, tmp_path):
    from atelier.serve.app import ServeSettings

    settings = ServeSettings(model=str(home[1]), output=tmp_path / "out", token="s3cret")
    with serving(settings) as url:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url)
        until(page, "!document.getElementById('tokenBox').hidden")
        assert "cannot reach" not in page.locator("#status").text_content()
        assert not page.locator("#form").is_visible()
        shoot(page, "9-token-asked")
        page.fill("#token", "wrong")
        page.click("#useToken")
        until(page, "document.getElementById('tokenHint').className.includes('error')")
        page.fill("#token", "s3cret")
        page.click("#useToken")
        until(page, "document.getElementById('sampler') !== null")
        assert page.locator("#sampler option").count() > 1  # filled once the token is in
        assert not page.locator("#tokenBox").is_visible()
        page.fill("#prompt", "a red circle")
        page.fill("#steps", "2")
        generate(page, 0)
        assert page.locator(".card img").first.evaluate("img => img.naturalWidth") == 32
        page.reload()  # the token is kept: asked once
        until(page, "document.querySelector('.card img') && "
                    "document.querySelector('.card img').naturalWidth === 32")  # fmt: skip
        assert not page.locator("#tokenBox").is_visible()
        assert page.locator("#forgetToken").is_visible()


def test_the_api_docs_work_with_the_network_cut_off(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    page.goto(server + "/docs")
    until(page, "document.querySelectorAll('section.op').length > 10")
    text = page.locator("main").inner_text()
    assert "POST /v1/txt2img" in text and "DELETE /v1/jobs/{job_id}" in text
    assert "tasks" in text and "steps" in text  # request and response fields are listed
    assert elsewhere == []
    shoot(page, "10-api-docs", full_page=False)


def test_a_running_job_is_followed_again_after_a_reload(browser, server):
    page = open_page(browser, server)
    page.fill("#prompt", "a blue circle")
    page.fill("#steps", "100")
    page.click("#generate")
    until(page, "document.getElementById('status').textContent.startsWith('step')")
    page.reload()
    until(page, "document.querySelector('#queue li .state') && document.querySelector("
                "'#queue li .state').textContent.startsWith('step')")  # fmt: skip
    page.locator("#queue li button.cancel").click()
    until(page, "document.querySelector('#queue li').dataset.status === 'cancelled'")
    page.reload()  # a finished job is not followed again
    until(page, "document.getElementById('model').options.length > 0")
    assert page.locator("#queue li").count() == 0


def test_the_picker_shows_a_models_example_grid_where_it_has_one(browser, server):
    page = open_page(browser, server)
    assert not page.locator("#modelExamples").is_visible()  # the default's folder has none
    page.select_option("#model", "tiny-gan")
    until(page, "document.querySelector('#modelExamples img').naturalWidth > 0")
    assert page.locator("#modelExamples").is_visible()
    assert page.get_attribute("#modelExamples", "href").startswith("blob:")
    page.select_option("#model", "tiny")
    assert not page.locator("#modelExamples").is_visible()
