"""Schemathesis against the app's own OpenAPI schema: generated requests for every operation get
no 5xx and responses that conform to the schema (status codes, content types, bodies)."""

import atexit
import base64
import io
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from atelier.diffusion.options import SamplingOptions
from atelier.kinds.diffusion import save_model
from atelier.kinds.upscaler import UpscalerConfig, save_upscaler
from atelier.models.unet import UNet
from atelier.serve.app import ServeSettings, create_app
from atelier.serve.schemas import IMAGE_FORMAT, Limits
from tests.pipelines.conftest import tiny_model
from tests.pipelines.test_cascade import TINY_UNET
from tests.pipelines.unclip_models import install_unclip

# Examples per operation: kept small for `make test`; raise it for a deeper run, e.g.
# ATELIER_SCHEMA_EXAMPLES=200 pytest tests/serve/test_schema.py --hypothesis-show-statistics
EXAMPLES = int(os.environ.get("ATELIER_SCHEMA_EXAMPLES", "25"))


# Built at import: schemathesis parametrizes from the schema at collection time.
ROOT = Path(tempfile.mkdtemp(prefix="atelier-schema-"))
atexit.register(shutil.rmtree, ROOT, True)


def make_app():
    save_model(tiny_model(), ROOT / "tiny", card="# tiny\n")
    # The default upscaler's name, tiny and fast, for the test to find in its ATELIER_HOME.
    fast = SamplingOptions(steps=2, guidance=1.0, sampler="euler")
    config = UpscalerConfig("shapes-sr-32-64", 32, 64, TINY_UNET, defaults=fast)
    save_upscaler(UNet(TINY_UNET), config, ROOT / "home" / "models" / config.name, card="# sr\n")
    install_unclip(ROOT / "home" / "models")  # tiny-unclip, for /v1/variations
    settings = ServeSettings(model=str(ROOT / "tiny"), output=ROOT / "out", limits=Limits())
    return create_app(settings)


def png_base64(value: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (value, 255, 128)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# Valid requests carry decodable images, all 32x32 (an inpaint mask matches its image, the
# upscaler takes them) and light (as a mask, each asks for repainting); negative cases still get
# arbitrary strings.
schemathesis.openapi.format(IMAGE_FORMAT, st.sampled_from([png_base64(v) for v in (0, 255)]))
PADS = ("left", "right", "top", "bottom")


def servable(case) -> None:
    """What else a model can serve depends on the model: an outpainted image gets sides the
    tiny model makes (multiples of 8) within the pixel limit, at least one side grown, and
    inpainting the tiny model's method. Only schema-valid values change, so a request that
    breaks the schema still does. test_hardening.py checks that the others are refused with
    422. (Here, not in a hook: schemathesis's coverage phase runs no hooks.)"""
    body = case.body
    if not isinstance(body, dict):
        return
    if case.operation.path == "/v1/outpaint":
        for pad in PADS:
            value = body.get(pad, 0)
            whole = type(value) in (int, float) and float(value).is_integer()  # 127.0 is 127
            if whole and 0 <= value <= 128:
                body[pad] = 8 * (int(value) % 9)
        if all(body.get(pad, 0) == 0 for pad in PADS):
            body["right"] = 8
    if case.operation.path == "/v1/inpaint" and body.get("method") == "trained":
        body["method"] = "masked"
    # Which options a model takes depends on its kind, which a schema cannot say: a schema-valid
    # ``options`` map becomes one the tiny (diffusion) model takes; one that breaks the schema
    # stays as it is, to be refused. test_api.py and test_toy_kind.py check other kinds' maps.
    if _schema_valid_options(body.get("options")):
        body["options"] = {"steps": 2, "karras": True}
    # Variations need an unCLIP model (another kind is refused with 422): a request naming no
    # model gets the installed tiny one, whose options are the unCLIP kind's (no CFG rescale).
    if case.operation.path == "/v1/variations":
        if body.get("model") is None:
            body["model"] = "tiny-unclip"
        if _schema_valid_options(body.get("options")):
            body["options"] = {"steps": 2, "two_sample_pick": False}
        if _schema_valid_rescale(body.get("guidance_rescale")):
            body.pop("guidance_rescale", None)
    # Steering needs a guide model installed beside the server's, which a schema cannot name:
    # schema-valid steering fields are dropped (test_steering.py checks them with a guide).
    if case.operation.path == "/v1/txt2img" and _schema_valid_steering(body):
        for name in STEERING:
            body.pop(name, None)


STEERING = ("clip_guidance", "classifier_guidance", "clip_model", "classifier_model", "cutouts")


def _schema_valid_steering(body: dict) -> bool:
    def number(v, lo, hi, whole=False):
        if v is None:
            return True
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        return lo <= v <= hi and (not whole or float(v).is_integer())

    def name(v):
        return v is None or (
            isinstance(v, str)
            and len(v) <= 100
            and re.fullmatch(r"[A-Za-z0-9_.\-]+", v) is not None
        )

    return (
        number(body.get("clip_guidance"), 0, 10_000)
        and number(body.get("classifier_guidance"), 0, 10_000)
        and number(body.get("cutouts"), 1, 64, whole=True)
        and name(body.get("clip_model"))
        and name(body.get("classifier_model"))
    )


def _schema_valid_rescale(value) -> bool:
    """Whether ``value`` is a ``guidance_rescale`` the schema allows (null, or in [0, 1])."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return 0 <= value <= 1


def _schema_valid_options(options) -> bool:
    """Whether ``options`` is what the schema allows: at most 32 names, each a number, a flag or
    a text of at most 100 characters (non-finite numbers are refused)."""
    if not isinstance(options, dict) or len(options) > 32:
        return False
    for value in options.values():
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if isinstance(value, str) and len(value) > 100:
            return False
        if not isinstance(value, int | float | bool | str):
            return False
    return True


schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())
# Both schema-valid requests (must be accepted, 2xx/404/429) and schema-violating ones (must be
# rejected with a documented 4xx).
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_its_schema(case, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(ROOT / "home"))
    servable(case)
    response = case.call_and_validate()
    assert response.status_code < 500
