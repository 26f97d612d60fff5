"""Issue 22's reproductions against the server: each bad request now ends in a 4xx with one short
line, before any job is queued, and never in a 5xx."""

import asyncio
import base64
import io
import json
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from PIL import EpsImagePlugin, Image
from typer.testing import CliRunner

from atelier.cli import app as cli
from atelier.kinds.diffusion import Model, save_model
from atelier.models.unet import UNet
from atelier.serve.app import create_app
from atelier.serve.errors import public_message
from atelier.serve.jobs import Job
from atelier.serve.middleware import CONTENT_SECURITY_POLICY
from atelier.serve.runners import ServeSettings
from atelier.serve.schemas import Limits
from tests.pipelines.conftest import tiny_model
from tests.serve.test_api import blocker, make_client, png_b64, wait


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\n")
    return folder


def queued(client) -> int:
    return len(client.app.state.queue._jobs)


def refused(r, status: int = 422, *, field: str | None = None, says: str = "") -> dict:
    """``r`` is a ``status`` answer in the documented shape, short, naming ``field``."""
    assert r.status_code == status, r.text
    assert len(r.content) < 2000, len(r.content)
    detail = r.json()["detail"]
    if isinstance(detail, list):
        assert all(set(item) == {"loc", "msg", "type"} for item in detail), detail
        if field is not None:
            assert any(field in item["loc"] for item in detail), detail
        text = " ".join(item["msg"] for item in detail)
    else:
        text = detail
    assert "\n" not in text and says in text, text
    return r.json()


# ------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize(
    "path, body, field, says",
    [
        ("txt2img", '{"prompt": "a", "guidance": NaN}', "guidance", "finite number"),
        ("txt2img", '{"prompt": "a", "guidance": Infinity}', "guidance", "finite number"),
        ("txt2img", '{"prompt": "a", "guidance": 1e999}', "guidance", "finite number"),
        ("txt2img", '{"prompt": "a", "seed": 1e999}', "seed", "finite number"),
        ("txt2img", '{"prompt": "a", "seed": true}', "seed", "true and false are not values"),
        ("txt2img", '{"prompt": "a", "options": {"guidance": NaN}}', "options", "finite number"),
        ("txt2img", '{"prompt": "a", "options": {"steps": Infinity}}', "options", "finite number"),
        ("img2img", '{"prompt": "a", "image": IMAGE, "strength": NaN}', "strength", "finite"),
        ("inpaint", '{"prompt": "a", "image": IMAGE, "mask": MASK, "feather": NaN}', "feather",
         "finite number"),
    ],
)  # fmt: skip
def test_non_finite_numbers_are_422(model_dir, tmp_path, path, body, field, says):
    image = json.dumps(png_b64(Image.new("RGB", (32, 32))))
    mask = json.dumps(png_b64(Image.new("L", (32, 32), 255)))
    raw = body.replace("IMAGE", image).replace("MASK", mask)
    with make_client(model_dir, tmp_path) as client:
        r = client.post(f"/v1/{path}", content=raw, headers={"content-type": "application/json"})
        refused(r, field=field, says=says)
        assert queued(client) == 0


@pytest.mark.parametrize(
    "raw", ['{"prompt": "a", "seed": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000]
)
def test_bodies_python_cannot_parse_are_400(model_dir, tmp_path, raw):
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/txt2img", content=raw, headers={"content-type": "application/json"})
        refused(r, 400, says="error parsing the body")


# ------------------------------------------------------------------ the body limit
def call_asgi(app, scope: dict, chunks) -> tuple[int, bytes, int]:
    """Run one HTTP request through ``app`` with a body of ``chunks`` (an iterator, possibly
    endless): the status, the body and how many chunks the app read."""
    read, sent = [0], []

    async def receive():
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read[0]


def http_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/v1/txt2img", "raw_path": b"/v1/txt2img",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                        *headers]}  # fmt: skip


def test_a_chunked_body_is_refused_once_past_the_limit_without_reading_the_rest(
    model_dir, tmp_path
):
    app = create_app(ServeSettings(model=str(model_dir), output=tmp_path / "out",
                                   limits=Limits(max_body_bytes=100_000)))  # fmt: skip
    megabyte = b" " * 1_000_000
    # 50 MB sent chunked (no Content-Length): refused at the first chunk past the limit.
    chunks = (megabyte[:64_000] for _ in range(800))
    status, body, read = call_asgi(app, http_scope([(b"transfer-encoding", b"chunked")]), chunks)
    assert status == 413 and json.loads(body)["detail"] == "request body over 100000 bytes"
    assert read == 2
    # A declared length over the limit: refused before a byte is read.
    declared = [(b"content-length", b"50000000")]
    status, _, read = call_asgi(app, http_scope(declared), (megabyte for _ in range(50)))
    assert status == 413 and read == 0
    # A body within the limit, chunked, still reaches the endpoint whole.
    parts = iter([b'{"prompt": ', b'"a", "steps": 0}'])
    status, body, _ = call_asgi(app, http_scope([(b"transfer-encoding", b"chunked")]), parts)
    assert status == 422 and b"steps" in body
    app.state.queue.close()


# ------------------------------------------------------------------ 422s never echo input
def test_a_422_never_echoes_the_input(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/txt2img", json={"prompt": "x" * 3_000_000})
        body = refused(r, field="prompt", says="at most 500 characters")
        assert "input" not in body["detail"][0] and "ctx" not in body["detail"][0]
        r = client.post("/v1/txt2img", json={"prompt": "a", "options": {"k" * 100_000: 1}})
        refused(r, field="options", says="tiny takes no kkk")
        r = client.post("/v1/txt2img", json={"prompt": "a", "n": "y" * 1_000_000})
        refused(r, field="n", says="valid integer")
        r = client.post("/v1/txt2img", content="{" + "z" * 1_000_000,
                        headers={"content-type": "application/json"})  # fmt: skip
        refused(r, says="JSON decode error")


# ------------------------------------------------------------------ progress streams
def test_many_event_streams_on_queued_jobs_do_not_stall_progress(model_dir, tmp_path):
    """Each stream used to hold a thread of the event loop's small pool (6 on 2 cores) while it
    waited: 6 watchers of queued jobs froze every other stream for up to 15 s."""
    shown = threading.Event()  # the running job's first step reached its watcher

    def steps(jobs, on_step):
        on_step(SimpleNamespace(i=0, total=2))
        # The job goes on only once its progress is seen (or 5 s pass, failing the test).
        assert shown.wait(5), "the running job's progress was held up"
        on_step(SimpleNamespace(i=1, total=2))
        return [[] for _ in jobs]

    def quick(jobs, on_step):
        return [[] for _ in jobs]

    def watch(job_id: str, started: threading.Event, texts: dict) -> None:
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            texts[job_id] = ""
            for text in stream.iter_text():
                texts[job_id] += text
                started.set()
                if '"step": 1' in texts[job_id]:
                    shown.set()

    with make_client(model_dir, tmp_path, limits=Limits(max_queue=32)) as client:
        release = blocker(client.app)
        queue = client.app.state.queue
        running = queue.submit(Job("steps", None, steps))
        waiting = [queue.submit(Job("quick", None, quick)) for _ in range(20)]
        texts: dict[str, str] = {}
        threads = []
        for job in [*waiting, running]:
            started = threading.Event()
            thread = threading.Thread(target=watch, args=(job.id, started, texts), daemon=True)
            thread.start()
            assert started.wait(10)
            threads.append(thread)
        time.sleep(0.2)  # every watcher is waiting for news now
        release.set()
        for thread in threads:
            thread.join(20)
        assert wait(client, running.id)["status"] == "done" and shown.is_set()
        assert '"step": 2' in texts[running.id] and "event: done" in texts[running.id]
        assert all("event: done" in texts[job.id] for job in waiting)


# ------------------------------------------------------------------ bad inputs, before queueing
@pytest.fixture(scope="module")
def sr_home(tmp_path_factory):
    """An ATELIER_HOME holding a tiny 32 -> 64 upscaler by the default upscaler's name."""
    from atelier.diffusion.options import SamplingOptions
    from atelier.kinds.upscaler import UpscalerConfig, save_upscaler
    from tests.pipelines.test_cascade import TINY_UNET

    home = tmp_path_factory.mktemp("home")
    fast = SamplingOptions(steps=2, guidance=1.0, sampler="euler")
    config = UpscalerConfig("shapes-sr-32-64", 32, 64, TINY_UNET, defaults=fast)
    save_upscaler(UNet(TINY_UNET), config, home / "models" / "shapes-sr-32-64", card="# sr\n")
    return home


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory):
    """The tiny model with a UNet of four levels: it makes sides that are multiples of 32."""
    tiny = tiny_model()
    unet = replace(tiny.config.unet, block_channels=(16, 32, 32, 32),
                   attention_levels=(False, True, False, False))  # fmt: skip
    config = replace(tiny.config, unet=unet)
    folder = tmp_path_factory.mktemp("models") / "deep"
    model = Model(config, UNet(unet).eval(), tiny.text_encoder, tiny.vae)
    save_model(model, folder, card="# deep\n")
    return folder


def image(w: int, h: int | None = None, colour=(255, 255, 255)) -> str:
    return png_b64(Image.new("RGB", (w, h or w), colour))


@pytest.mark.parametrize(
    "path, body, field, says",
    [
        ("inpaint", {"image": image(32), "mask": png_b64(Image.new("L", (32, 32), 0))}, "mask",
         "the mask is empty"),
        ("inpaint", {"image": image(32), "mask": png_b64(Image.new("L", (32, 32), 255)),
                     "method": "trained"}, "method", "needs an inpainting model"),
        ("img2img", {"image": image(1)}, "image", "image is 1x1; each side must be at least 8"),
        ("img2img", {"image": image(40, 4)}, "image", "at least 8 pixels"),
        ("img2img", {"image": image(36)}, "image", "36x36; tiny needs sides that are multiples"),
        ("outpaint", {"image": image(32)}, "body", "at least one of left, right, top, bottom"),
        ("outpaint", {"image": image(32), "left": 3}, "image", "the outpainted image is 35x32"),
        ("outpaint", {"image": image(240), "left": 128, "right": 128}, "image",
         "the outpainted image is 496x240, over the limit of 65536 pixels"),
        ("upscale", {"image": image(20)}, "image", "this upscaler takes 32x32 images, got 20x20"),
        ("upscale", {"image": image(64)}, "image", "this upscaler takes 32x32 images, got 64x64"),
    ],
)  # fmt: skip
def test_bad_inputs_are_422_before_a_job_is_queued(
    model_dir, tmp_path, sr_home, monkeypatch, path, body, field, says
):
    monkeypatch.setenv("ATELIER_HOME", str(sr_home))
    with make_client(model_dir, tmp_path) as client:
        prompt = {} if path == "upscale" else {"prompt": "a red circle"}
        refused(client.post(f"/v1/{path}", json={**prompt, **body}), field=field, says=says)
        assert queued(client) == 0


def test_a_size_the_model_cannot_make_is_422_naming_the_sizes(deep_model_dir, tmp_path):
    with make_client(deep_model_dir, tmp_path, limits=Limits(max_pixels=50 * 50)) as client:
        r = client.post("/v1/txt2img", json={"prompt": "a", "size": 48})
        refused(r, field="size", says="size 48 cannot be made by this model: use a multiple of 32")
        r = client.post("/v1/txt2img", json={"prompt": "a", "size": 64})
        refused(r, field="size", says="size is 64x64, over the limit of 2500 pixels")
        assert queued(client) == 0
        assert client.post("/v1/txt2img", json={"prompt": "a", "steps": 1}).status_code == 202


def test_the_budgets_pixel_limit_applies_to_request_images(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_MAX_PIXELS", "500")
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/img2img", json={"prompt": "a", "image": image(32)})
        refused(r, field="image", says="image is 32x32, over the limit of 500 pixels")


def test_only_the_allowed_image_formats_are_decoded(model_dir, tmp_path, monkeypatch):
    opened = []
    original = EpsImagePlugin.EpsImageFile._open
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open",
                        lambda self: opened.append(1) or original(self))  # fmt: skip
    with make_client(model_dir, tmp_path) as client:
        for fmt in ("EPS", "TGA", "PCX", "ICO"):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), "red").save(buffer, format=fmt)
            data = base64.b64encode(buffer.getvalue()).decode()
            r = client.post("/v1/img2img", json={"prompt": "a", "image": data})
            refused(r, field="image", says="not a readable image in an accepted format (PNG")
        jpeg = io.BytesIO()
        Image.new("RGB", (32, 32), "red").save(jpeg, format="JPEG")
        data = base64.b64encode(jpeg.getvalue()).decode()
        r = client.post("/v1/img2img", json={"prompt": "a", "image": data, "steps": 1})
        assert r.status_code == 202, r.text
    assert opened == []  # the EPS decoder (which runs Ghostscript) was never asked


# ------------------------------------------------------------------ no absolute paths
def test_no_reply_names_an_absolute_path(model_dir, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "models" / "broken").mkdir(parents=True)
    (home / "models" / "broken" / "config.json").write_text("{not json")
    monkeypatch.setenv("ATELIER_HOME", str(home))
    with make_client(home / "models" / "broken", tmp_path) as client:
        r = client.post("/v1/txt2img", json={"prompt": "a"})
        assert str(tmp_path) not in r.text and "/" not in r.json()["detail"]
        refused(r, 404, says="config.json is not valid JSON")
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/txt2img", json={"prompt": "a", "model": "broken"})
        assert str(tmp_path) not in r.text
        refused(r, 404, says="config.json is not valid JSON")

        def crash(jobs, on_step):
            raise FileNotFoundError(f"{tmp_path}/weights/unet.safetensors is missing")

        job = client.app.state.queue.submit(Job("crash", None, crash))
        view = wait(client, job.id)
        assert view["error"] == "FileNotFoundError: unet.safetensors is missing"


@pytest.mark.parametrize(
    "text, public",
    [
        ("/home/u/.atelier/models/x/config.json is not JSON", "config.json is not JSON"),
        ("no model at '/opt/atelier/weights/tiny': pass", "no model at 'tiny': pass"),
        (r"C:\Users\u\models\tiny\unet.safetensors missing", "unet.safetensors missing"),
        ("see http://example.org/a/b and out/serve/x.png", "see http://example.org/a/b and "
         "out/serve/x.png"),
        ("line one\n  line two", "line one line two"),
    ],
)  # fmt: skip
def test_public_messages_keep_only_the_last_path_component(text, public):
    assert public_message(text) == public
    assert len(public_message("x" * 10_000)) == 300


# ------------------------------------------------------------------ hosts and headers
def test_allowed_hosts_answer_only_the_names_given(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, allowed_hosts=("localhost", "127.0.0.1")) as client:
        assert client.get("/v1/samplers").status_code == 400  # Host: testserver
        assert client.get("/v1/samplers", headers={"host": "evil.example"}).status_code == 400
        ok = client.get("/v1/samplers", headers={"host": "localhost:7860"})
        assert ok.status_code == 200 and ok.headers["x-frame-options"] == "DENY"
        assert client.get("/", headers={"host": "127.0.0.1"}).status_code == 200


@pytest.mark.parametrize(
    "args, hosts",
    [
        ([], ("127.0.0.1", "localhost", "::1")),
        (["--allowed-hosts", "*"], ()),
        (["--host", "0.0.0.0", "--token", "t"], ()),
        (["--host", "0.0.0.0", "--token", "t", "--allowed-hosts", "gpu.lan, *.example.org"],
         ("gpu.lan", "*.example.org")),
        (["--allowed-hosts", "a*b"], "'a*b' is not a name; wildcards are '*' or '*.example.org'"),
    ],
)  # fmt: skip
def test_serve_allows_loopback_names_by_default(model_dir, tmp_path, monkeypatch, args, hosts):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    result = CliRunner().invoke(cli, ["serve", "--model", str(model_dir),
                                      "-o", str(tmp_path / "out"), *args])  # fmt: skip
    if isinstance(hosts, str):  # refused, with one line
        assert result.exit_code == 2 and hosts in result.output and not served
        return
    assert result.exit_code == 0, result.output
    assert served[0].state.settings.allowed_hosts == hosts
    served[0].state.queue.close()


def test_every_answer_carries_the_security_headers(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, limits=Limits(max_body_bytes=100)) as client:
        answers = [client.get("/"), client.get("/v1/samplers"), client.get("/v1/jobs/nope"),
                   client.post("/v1/txt2img", json={"prompt": "a" * 200}),
                   client.post("/v1/txt2img", json={"prompt": ""})]  # fmt: skip
        assert [r.status_code for r in answers] == [200, 200, 404, 413, 422]
        for r in answers:
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        docs = client.get("/docs")  # the package's own page, under the same policy
        assert docs.status_code == 200
        assert docs.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
