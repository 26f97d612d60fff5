"""Schemathesis against the app's own OpenAPI schema: generated requests for every operation get
no 5xx and responses that conform to the schema (status codes, content types, bodies)."""

import atexit
import base64
import io
import os
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from atelier.kinds.diffusion import save_model
from atelier.serve.app import ServeSettings, create_app
from atelier.serve.schemas import IMAGE_FORMAT, Limits
from tests.pipelines.conftest import tiny_model

# Examples per operation: kept small for `make test`; raise it for a deeper run, e.g.
# ATELIER_SCHEMA_EXAMPLES=200 pytest tests/serve/test_schema.py --hypothesis-show-statistics
EXAMPLES = int(os.environ.get("ATELIER_SCHEMA_EXAMPLES", "25"))


def make_app():
    # Built at import: schemathesis parametrizes from the schema at collection time.
    root = Path(tempfile.mkdtemp(prefix="atelier-schema-"))
    atexit.register(shutil.rmtree, root, True)
    save_model(tiny_model(), root / "tiny", card="# tiny\n")
    settings = ServeSettings(model=str(root / "tiny"), output=root / "out", limits=Limits())
    return create_app(settings)


def png_base64(value: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (value, 255 - value, 128)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# Valid requests carry decodable images (all 16x16, so an inpaint mask matches its image);
# negative cases still get arbitrary strings.
schemathesis.openapi.format(IMAGE_FORMAT, st.sampled_from([png_base64(v) for v in (0, 255)]))


@schemathesis.hook
def map_body(ctx, body):
    """Which options a model takes depends on its kind, which a schema cannot say: generated
    ``options`` maps become ones the tiny (diffusion) model takes. tests/serve/test_api.py
    checks that others are refused with 422."""
    if isinstance(body, dict) and isinstance(body.get("options"), dict):
        body["options"] = {"steps": 2, "karras": True}
    return body


schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())
# Both schema-valid requests (must be accepted, 2xx/404/429) and schema-violating ones (must be
# rejected with a documented 4xx).
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_its_schema(case):
    response = case.call_and_validate()
    assert response.status_code < 500
