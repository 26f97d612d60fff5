"""The HTTP API with httpx (FastAPI's TestClient): every endpoint and every limit."""

import base64
import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from atelier.kinds.diffusion import save_model
from atelier.pipelines.metadata import read_params
from atelier.serve.app import ServeSettings, create_app
from atelier.serve.jobs import Job
from atelier.serve.schemas import Limits
from tests.pipelines.conftest import tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\n")
    return folder


def make_client(model_dir, tmp_path, **overrides) -> TestClient:
    limits = overrides.pop("limits", Limits())
    settings = ServeSettings(model=str(model_dir), output=tmp_path / "out", limits=limits,
                             **overrides)  # fmt: skip
    return TestClient(create_app(settings))


def wait(client, job_id, headers=None, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        view = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if view["status"] in ("done", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def png_b64(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def blocker(app):
    """Occupy the worker with a job that runs until the returned event is set."""
    release = threading.Event()

    def run(jobs, on_step):
        release.wait(10)
        return [[] for _ in jobs]

    app.state.queue.submit(Job("block", None, run))
    time.sleep(0.1)
    return release


def test_txt2img_round_trip_with_parameters(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:
        r = client.post(
            "/v1/txt2img", json={"prompt": "a red circle", "seed": 5, "steps": 3, "n": 2}
        )
        assert r.status_code == 202, r.text
        view = wait(client, r.json()["id"])
        assert view["status"] == "done" and [im["seed"] for im in view["images"]] == [5, 6]
        assert "Steps: 3" in view["images"][0]["parameters"]
        png = client.get(view["images"][0]["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        path = tmp_path / "x.png"
        path.write_bytes(png.content)
        assert read_params(path).seed == 5
        assert client.get("/v1/samplers").json()[0] == "ddpm"
        assert client.get("/v1/models").status_code == 200
        spec = client.get("/openapi.json").json()
        assert "/v1/txt2img" in spec["paths"] and "/v1/jobs/{job_id}" in spec["paths"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),
        ({"prompt": "a", "steps": 101}, "steps"),
        ({"prompt": "a", "steps": 0}, "steps"),
        ({"prompt": "a", "n": 9}, "n"),
        ({"prompt": "a", "sampler": "magic"}, "sampler"),
        ({"prompt": "a", "size": 1000}, "size"),
        ({"prompt": "a", "size": 40}, "size"),
        ({"prompt": "a", "model": "../etc"}, "model"),
        ({"prompt": "a", "surprise": 1}, "surprise"),
        ({"prompt": "a red circle AND"}, "empty sub-prompt around AND"),
    ],
)
def test_limits_are_422_naming_the_field(model_dir, tmp_path, body, field):
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/txt2img", json=body)
        assert r.status_code == 422
        assert field in r.text


def test_body_and_pixel_limits(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, limits=Limits(max_body_bytes=2000)) as client:
        big = client.post("/v1/img2img", content=b"{" + b" " * 3000 + b"}",
                          headers={"content-type": "application/json"})  # fmt: skip
        assert big.status_code == 413 and "bytes" in big.json()["detail"]
    with make_client(model_dir, tmp_path) as client:
        huge = png_b64(Image.new("RGB", (300, 300)))
        r = client.post("/v1/img2img", json={"prompt": "a", "image": huge})
        assert r.status_code == 422 and "over the limit" in r.text
        r = client.post("/v1/img2img", json={"prompt": "a", "image": "not base64!"})
        assert r.status_code == 422 and "base64" in r.text
        garbage = base64.b64encode(b"garbage bytes").decode()
        r = client.post("/v1/img2img", json={"prompt": "a", "image": garbage})
        assert r.status_code == 422 and "not a readable image" in r.text
        mask = png_b64(Image.new("L", (16, 16), 255))
        image = png_b64(Image.new("RGB", (32, 32)))
        r = client.post("/v1/inpaint", json={"prompt": "a", "image": image, "mask": mask})
        assert r.status_code == 422 and "the mask is 16x16 but the image is 32x32" in r.text


def test_queue_full_is_429_with_retry_after(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, limits=Limits(max_queue=1)) as client:
        release = blocker(client.app)
        first = client.post("/v1/txt2img", json={"prompt": "a", "steps": 2})
        assert first.status_code == 202
        second = client.post("/v1/txt2img", json={"prompt": "b", "steps": 2})
        assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
        assert client.get(f"/v1/jobs/{first.json()['id']}").json()["queue_position"] == 0
        release.set()
        assert wait(client, first.json()["id"])["status"] == "done"


def test_cancel_queued_and_running_jobs(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:
        release = blocker(client.app)
        queued = client.post("/v1/txt2img", json={"prompt": "a", "steps": 2}).json()["id"]
        view = client.delete(f"/v1/jobs/{queued}").json()
        assert view["status"] == "cancelled"
        release.set()
        # A running job stops between steps: a long job, cancelled as soon as it starts.
        job = client.post("/v1/txt2img", json={"prompt": "a", "steps": 100}).json()["id"]
        while client.get(f"/v1/jobs/{job}").json()["status"] == "queued":
            time.sleep(0.01)
        client.delete(f"/v1/jobs/{job}")
        final = wait(client, job)
        assert final["status"] == "cancelled" and final["progress"]["step"] < 100
        assert client.delete("/v1/jobs/nope").status_code == 404
        assert client.get("/v1/jobs/nope").status_code == 404


def test_a_crashing_job_fails_alone(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:

        def crash(jobs, on_step):
            raise RuntimeError("boom")

        bad = client.app.state.queue.submit(Job("crash", None, crash))
        good = client.post("/v1/txt2img", json={"prompt": "a", "steps": 2}).json()["id"]
        assert wait(client, bad.id)["error"] == "RuntimeError: boom"
        assert wait(client, good)["status"] == "done"


def test_batching_runs_compatible_jobs_together_without_changing_pixels(model_dir, tmp_path):
    bodies = [
        {"prompt": p, "seed": s, "steps": 3}
        for p, s in (("a red circle", 1), ("two blue squares", 7))
    ]
    results = {}
    for batching in (True, False):
        with make_client(model_dir, tmp_path / str(batching), batching=batching) as client:
            release = blocker(client.app)
            ids = [client.post("/v1/txt2img", json=b).json()["id"] for b in bodies]
            calls = []
            queue = client.app.state.queue
            original = queue._take

            def spy(original=original, calls=calls):
                batch = original()
                if batch:
                    calls.append(len(batch))
                return batch

            queue._take = spy
            release.set()
            views = [wait(client, i) for i in ids]
            results[batching] = [client.get(v["images"][0]["url"]).content for v in views]
            results[f"calls{batching}"] = calls
    assert results["callsTrue"][0] == 2  # both jobs in one batch
    pixels = {k: [np.asarray(Image.open(io.BytesIO(c))) for c in v] for k, v in results.items()
              if not str(k).startswith("calls")}  # fmt: skip
    for a, b in zip(pixels[True], pixels[False]):
        np.testing.assert_array_equal(a, b)


def test_bearer_token_and_image_paths(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, token="s3cret") as client:
        assert client.post("/v1/txt2img", json={"prompt": "a"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/v1/models", headers=wrong).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        r = client.post("/v1/txt2img", json={"prompt": "a", "steps": 2}, headers=ok)
        assert r.status_code == 202
        wait(client, r.json()["id"], headers=ok)
        assert client.get("/v1/images/..%2F..%2Fetc%2Fpasswd", headers=ok).status_code == 404
        assert client.get("/v1/images/notes.txt", headers=ok).status_code == 404
        assert client.get("/").status_code == 200  # the page itself; its API calls carry the token


def test_schema_declares_the_bearer_scheme_only_when_a_token_is_set(model_dir, tmp_path):
    with make_client(model_dir, tmp_path, token="s3cret") as client:
        spec = client.get("/openapi.json").json()
        op = spec["paths"]["/v1/txt2img"]["post"]
        assert op["security"] == [{"HTTPBearer": []}] and "401" in op["responses"]
    with make_client(model_dir, tmp_path) as client:
        op = client.get("/openapi.json").json()["paths"]["/v1/txt2img"]["post"]
        assert "security" not in op and "401" not in op["responses"]


def test_405_lists_every_method_of_the_path(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:
        r = client.put("/v1/jobs/abc")
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_progress_stream_reports_steps_then_done(model_dir, tmp_path):
    with make_client(model_dir, tmp_path) as client:
        job = client.post("/v1/txt2img", json={"prompt": "a", "steps": 4}).json()["id"]
        with client.stream("GET", f"/v1/jobs/{job}/events") as stream:
            text = "".join(stream.iter_text())
        assert "event: progress" in text and "event: done" in text
        assert '"total": 4' in text and '"preview": "' in text


def test_editing_endpoints(model_dir, tmp_path):
    image = Image.new("RGB", (32, 32), (255, 255, 255))
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (16, 0, 32, 32))
    with make_client(model_dir, tmp_path) as client:
        bodies = {
            "img2img": {"prompt": "a red circle", "image": png_b64(image), "strength": 0.5},
            "inpaint": {"prompt": "a red circle", "image": png_b64(image), "mask": png_b64(mask)},
            "outpaint": {"prompt": "a red circle", "image": png_b64(image), "right": 16},
        }
        for kind, body in bodies.items():
            r = client.post(f"/v1/{kind}", json={**body, "steps": 2, "seed": 3})
            assert r.status_code == 202, r.text
            view = wait(client, r.json()["id"])
            assert view["status"] == "done", view
            assert f"Mode: {kind}" in view["images"][0]["parameters"]
        r = client.post("/v1/upscale", json={"image": png_b64(image), "model": "no-such-sr"})
        assert r.status_code == 404 and "no-such-sr" in r.text


def test_img2img_takes_the_deterministic_form_and_rescale_is_recorded(tmp_path):
    folder = tmp_path / "tiny-sde"
    save_model(tiny_model(sampler="dpmpp_2m_sde"), folder, card="# tiny-sde\n")
    image = png_b64(Image.new("RGB", (32, 32), (255, 255, 255)))
    with make_client(folder, tmp_path) as client:
        for kind, body, sampler in [
            ("txt2img", {}, "DPM++ 2M SDE"),
            ("img2img", {"image": image, "strength": 0.5}, "DPM++ 2M"),
            ("img2img", {"image": image, "sampler": "euler_ancestral"}, "Euler a"),
            ("txt2img", {"guidance_rescale": 0.7}, "DPM++ 2M SDE"),
        ]:
            r = client.post(f"/v1/{kind}", json={"prompt": "a red circle", "steps": 2, **body})
            assert r.status_code == 202, r.text
            view = wait(client, r.json()["id"])
            assert view["status"] == "done", view
            assert f"Sampler: {sampler}," in view["images"][0]["parameters"]
            rescale = body.get("guidance_rescale")
            assert (f"Guidance rescale: {rescale}" in view["images"][0]["parameters"]) == bool(
                rescale
            )
        r = client.post("/v1/txt2img", json={"prompt": "a", "guidance_rescale": 1.5})
        assert r.status_code == 422 and "guidance_rescale" in r.text


def test_the_servers_own_limits_apply(model_dir, tmp_path):
    strict = Limits(max_steps=5, max_batch=2, max_prompt_chars=10, max_pixels=100)
    with make_client(model_dir, tmp_path, limits=strict) as client:
        r = client.post("/v1/txt2img", json={"prompt": "a", "steps": 6})
        assert r.status_code == 422 and "limit of 5" in r.text
        r = client.post("/v1/txt2img", json={"prompt": "a", "n": 3})
        assert r.status_code == 422 and "limit of 2" in r.text
        r = client.post("/v1/txt2img", json={"prompt": "a red circle here"})
        assert r.status_code == 422 and "10 characters" in r.text
        image = png_b64(Image.new("RGB", (16, 16)))
        r = client.post("/v1/img2img", json={"prompt": "a", "image": image})
        assert r.status_code == 422 and "over the limit of 100 pixels" in r.text
        assert client.post("/v1/txt2img", json={"prompt": "a", "steps": 5}).status_code == 202


def test_upscale_endpoint_returns_the_doubled_image(model_dir, tmp_path, monkeypatch):
    from atelier.diffusion.options import SamplingOptions
    from atelier.kinds.upscaler import UpscalerConfig, save_upscaler
    from atelier.models.unet import UNet
    from tests.pipelines.test_cascade import TINY_UNET

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    fast = SamplingOptions(steps=2, guidance=1.0, sampler="euler")
    config = UpscalerConfig("shapes-sr-32-64", 32, 64, TINY_UNET, defaults=fast)
    save_upscaler(UNet(TINY_UNET), config, tmp_path / "home" / "models" / "shapes-sr-32-64",
                  card="# sr\n")  # fmt: skip
    image = Image.new("RGB", (32, 32), (220, 40, 40))
    with make_client(model_dir, tmp_path) as client:
        r = client.post("/v1/upscale", json={"image": png_b64(image), "seed": 5})
        assert r.status_code == 202, r.text
        view = wait(client, r.json()["id"])
        assert view["status"] == "done", view
        png = client.get(view["images"][0]["url"]).content
        assert Image.open(io.BytesIO(png)).size == (64, 64)
        assert "Mode: upscale" in view["images"][0]["parameters"]


def test_a_job_past_its_time_limit_fails_with_a_message(model_dir, tmp_path):
    limits = Limits(job_timeout_s=0.2)
    with make_client(model_dir, tmp_path, limits=limits) as client:
        r = client.post("/v1/txt2img", json={"prompt": "a", "steps": 100, "n": 8})
        view = wait(client, r.json()["id"])
        assert view["status"] == "failed" and "timed out after" in view["error"]
        # The server goes on serving (with room for a job on a loaded machine).
        client.app.state.queue.job_timeout_s = 60
        r = client.post("/v1/txt2img", json={"prompt": "a", "steps": 1})
        assert wait(client, r.json()["id"])["status"] == "done"


def test_cors_is_off_by_default_and_allows_only_configured_origins(model_dir, tmp_path):
    pre = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    with make_client(model_dir, tmp_path) as client:
        r = client.get("/v1/samplers", headers={"Origin": "https://example.org"})
        assert "access-control-allow-origin" not in r.headers
    with make_client(model_dir, tmp_path, cors_origins=("https://example.org",)) as client:
        r = client.options("/v1/txt2img", headers=pre)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://example.org"
        r = client.options("/v1/txt2img", headers={**pre, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
