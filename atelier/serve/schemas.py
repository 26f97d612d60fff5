"""Request and response bodies of the HTTP API (pydantic), with every limit enforced here.

Limits come from :class:`Limits` (set by ``atelier serve`` options) and the resource budget
(``atelier/budget.py``); a request past one gets a 422 naming the field and the limit. Numbers
must be finite (JSON's NaN and Infinity, and 1e999, are refused). Images travel as base64 in one
of :data:`~atelier.data.images.IMAGE_FORMATS` (no other decoder runs) and are checked for their
sides and pixel count before any pixel is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Annotated, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atelier.budget import budget
from atelier.data.images import IMAGE_FORMATS
from atelier.diffusion.samplers import SAMPLER_NAMES
from atelier.pipelines.composable import split_and
from atelier.pipelines.lora_tags import split_lora_tags
from atelier.pipelines.masks import repaint_pixels
from atelier.serve.errors import problem

# The OpenAPI string format of image fields: base64 bytes that PIL decodes (schema checkers such
# as schemathesis register a strategy for it).
IMAGE_FORMAT = "image-base64"
# Steering's bounds (kinds/steering.py: SteerSpec), repeated so the schema states them.
MAX_STEER_SCALE = 10_000.0
MAX_CUTOUTS = 64
# No model makes anything of a smaller image (the default one needs sides of 8 or more).
MIN_SIDE = 8

# A value of a kind's sampling option: a number, a flag or a name (a sampler's, say).
OptionValue = int | float | bool | Annotated[str, Field(max_length=100)]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_queue: int = 16
    max_body_bytes: int = 4 * 1024 * 1024
    max_pixels: int = 256 * 256
    max_steps: int = 100
    max_batch: int = 8
    max_prompt_chars: int = 500
    job_timeout_s: float = 300.0


LIMITS = Limits()


def limit_problems(req: BaseModel, limits: Limits) -> list[dict]:
    """What in ``req`` exceeds the server's configured ``limits`` (the schema's own bounds are
    the defaults; ``atelier serve`` may set stricter ones) or the resource budget's pixels, as
    FastAPI validation errors (``{"loc", "msg", "type"}``), so every 422 has the one documented
    body shape."""
    problems = []
    steps, n = getattr(req, "steps", None), getattr(req, "n", 1)
    if steps is not None and steps > limits.max_steps:
        problems.append(
            problem("steps", f"steps {steps} is over this server's limit of {limits.max_steps}")
        )
    # A kind's own step counts in the options map (MaskGIT's steps, unCLIP's prior_steps).
    for name, value in (getattr(req, "options", None) or {}).items():
        counts = name == "steps" or name.endswith("_steps")
        if counts and isinstance(value, int | float) and value > limits.max_steps:
            problems.append(problem("options", f"{name} {value} is over this server's limit of "
                                    f"{limits.max_steps}"))  # fmt: skip
    if n > limits.max_batch:
        problems.append(problem("n", f"n {n} is over this server's limit of {limits.max_batch}"))
    for field in ("prompt", "negative_prompt"):
        text = getattr(req, field, "")
        if len(text) > limits.max_prompt_chars:
            limit = limits.max_prompt_chars
            problems.append(
                problem(field, f"{field} is over this server's limit of {limit} characters")
            )
    max_pixels = min(limits.max_pixels, budget().max_pixels)
    sizes = {}
    for field in ("image", "mask"):
        data = getattr(req, field, None)
        if data is not None:
            # The validators decoded it already; the pixel limit needs only its size.
            sizes[field] = image_size(data, what=field)
    if getattr(req, "size", None) is not None:
        sizes["size"] = (req.size, req.size)
    if isinstance(req, OutpaintRequest):
        w, h = sizes["image"]
        sizes["image"] = (w + req.left + req.right, h + req.top + req.bottom)
    for field, (w, h) in sizes.items():
        if w * h > max_pixels:
            what = "the outpainted image" if isinstance(req, OutpaintRequest) else field
            problems.append(
                problem(field, f"{what} is {w}x{h}, over the limit of {max_pixels} pixels")
            )
    return problems


class _Request(BaseModel):
    # allow_inf_nan: Python's JSON reads NaN, Infinity and 1e999 as floats, and ge/le bounds
    # let NaN through; no field or option means anything by them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field("", max_length=LIMITS.max_prompt_chars, description="What to draw.")
    negative_prompt: str = Field("", max_length=LIMITS.max_prompt_chars)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="None picks one at random.")
    steps: int | None = Field(None, ge=1, le=LIMITS.max_steps)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    guidance_rescale: float | None = Field(None, ge=0.0, le=1.0, description="CFG rescale phi.")
    sampler: Literal[SAMPLER_NAMES] | None = None  # type: ignore[valid-type]
    model: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    options: dict[str, OptionValue] | None = Field(
        None, max_length=32,
        description="Sampling options of the model's kind by name (GET /v1/models lists them); "
        "an option its kind does not take is refused with 422.",
    )  # fmt: skip

    @field_validator("*", mode="before")
    @classmethod
    def _no_flags(cls, v: object) -> object:
        # No field is a flag, and pydantic would read true as the number 1.
        if isinstance(v, bool):
            raise ValueError("true and false are not values of this field")
        return v

    @field_validator("prompt")
    @classmethod
    def _sub_prompts(cls, v: str) -> str:
        split_and(v)  # AUTOMATIC1111's AND: every sub-prompt must hold text
        split_lora_tags(v)  # AUTOMATIC1111's <lora:NAME:WEIGHT>, well formed
        return v


class Txt2ImgRequest(_Request):
    prompt: str = Field(..., min_length=1, max_length=LIMITS.max_prompt_chars)
    n: int = Field(1, ge=1, le=LIMITS.max_batch, description="Images, seeds seed..seed+n-1.")
    size: int | None = Field(None, ge=16, le=256, multiple_of=16)
    # Steering by gradient (diffusion models): CLIP guidance through x_0 (or at x_t with a noised
    # CLIP), or a noise-aware classifier's toward the prompt's cells; one of the two.
    clip_guidance: float | None = Field(
        None, ge=0.0, le=MAX_STEER_SCALE, description="CLIP guidance scale (100 mild, 1000 strong)."
    )
    clip_model: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="CLIP or noised CLIP (default shapes-clip).",
    )
    classifier_guidance: float | None = Field(None, ge=0.0, le=MAX_STEER_SCALE)
    classifier_model: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Default shapes-classifier-noised.",
    )
    cutouts: int | None = Field(None, ge=1, le=MAX_CUTOUTS, description="CLIP guidance's cutouts.")

    @model_validator(mode="after")
    def _one_steering(self) -> Txt2ImgRequest:
        if self.clip_guidance is not None and self.classifier_guidance is not None:
            raise ValueError("give clip_guidance or classifier_guidance, not both")
        return self


def _open(data: str, what: str) -> Image.Image:
    """A base64 image string -> an unloaded PIL image (only its header has been read), in one
    of the allowed formats (EPS, say, would run Ghostscript)."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be base64-encoded image bytes") from None
    try:
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
    except Exception as err:  # PIL raises many types for bad bytes
        allowed = ", ".join(IMAGE_FORMATS)
        raise ValueError(
            f"{what} is not a readable image in an accepted format ({allowed}; "
            f"{type(err).__name__})"
        ) from None
    w, h = image.size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ValueError(f"{what} is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
    return image


def image_size(data: str, *, what: str = "image") -> tuple[int, int]:
    """(width, height) of a base64 image from its header, without decoding its pixels."""
    return _open(data, what).size


def decode_image(
    data: str, *, what: str = "image", max_pixels: int = LIMITS.max_pixels
) -> Image.Image:
    """A base64 image string -> PIL image, its pixel count checked before decoding."""
    image = _open(data, what)
    w, h = image.size
    if w * h > max_pixels:
        raise ValueError(f"{what} is {w}x{h}, over the limit of {max_pixels} pixels")
    try:
        image.load()
    except Exception as err:  # PIL raises many types for bad bytes
        raise ValueError(f"{what} is not a readable image ({type(err).__name__})") from None
    return image


class _ImageRequest(_Request):
    image: str = Field(
        ..., description=f"Base64-encoded image: {', '.join(IMAGE_FORMATS)}.",
        json_schema_extra={"format": IMAGE_FORMAT},
    )  # fmt: skip

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        decode_image(v)
        return v


class Img2ImgRequest(_ImageRequest):
    prompt: str = Field(..., min_length=1, max_length=LIMITS.max_prompt_chars)
    strength: float = Field(0.6, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=LIMITS.max_batch)


class InpaintRequest(_ImageRequest):
    prompt: str = Field(..., min_length=1, max_length=LIMITS.max_prompt_chars)
    mask: str = Field(
        ..., description="Base64 PNG of the image's size; white = repaint.",
        json_schema_extra={"format": IMAGE_FORMAT},
    )  # fmt: skip
    method: Literal["masked", "trained"] = "masked"
    grow: int = Field(0, ge=0, le=32)
    feather: float = Field(0.0, ge=0.0, le=16.0)

    @field_validator("mask")
    @classmethod
    def _mask(cls, v: str) -> str:
        if not repaint_pixels(decode_image(v, what="mask")).any():
            raise ValueError("the mask is empty: paint the area to repaint white (white = repaint)")
        return v

    @model_validator(mode="after")
    def _same_size(self) -> InpaintRequest:
        (iw, ih), (mw, mh) = image_size(self.image), image_size(self.mask, what="mask")
        if (iw, ih) != (mw, mh):
            raise ValueError(
                f"the mask is {mw}x{mh} but the image is {iw}x{ih}; send a mask of the image's size"
            )
        return self


class OutpaintRequest(_ImageRequest):
    prompt: str = Field(..., min_length=1, max_length=LIMITS.max_prompt_chars)
    left: int = Field(0, ge=0, le=128)
    right: int = Field(0, ge=0, le=128)
    top: int = Field(0, ge=0, le=128)
    bottom: int = Field(0, ge=0, le=128)

    @model_validator(mode="after")
    def _grows(self) -> OutpaintRequest:
        if not any((self.left, self.right, self.top, self.bottom)):
            raise ValueError("outpainting needs at least one of left, right, top, bottom above 0")
        return self


class UpscaleRequest(_ImageRequest):
    pass


class VariationsRequest(_ImageRequest):
    """An unCLIP model's variations (DALL-E 2): the image's CLIP embedding decoded once per seed."""

    prompt: str = Field(
        "", max_length=LIMITS.max_prompt_chars,
        description="Optional caption for the decoder, to keep the variations on topic.",
    )  # fmt: skip
    n: int = Field(1, ge=1, le=LIMITS.max_batch, description="Images, seeds seed..seed+n-1.")


class ImageResult(BaseModel):
    url: str
    seed: int
    parameters: str = Field(description="AUTOMATIC1111-style parameters text of this image.")
    png_base64: str | None = None


class Progress(BaseModel):
    step: int
    total: int


class JobView(BaseModel):
    id: str
    kind: str
    status: JobStatus
    progress: Progress
    images: list[ImageResult] = []
    error: str | None = None
    queue_position: int | None = None


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    status_url: str
    events_url: str


Task = Literal["txt2img", "img2img", "inpaint", "outpaint", "upscale", "variations"]


class OptionInfo(BaseModel):
    name: str
    type: Literal["int", "float", "bool", "str"]
    default: OptionValue = Field(description="This model's own default (its folder's).")
    choices: list[str] | None = None
    minimum: float | None = Field(None, description="Inclusive lower bound of a number.")
    maximum: float | None = Field(None, description="Inclusive upper bound of a number.")


class Figure(BaseModel):
    name: str = Field(description="What is measured, e.g. 'shapes-bench accuracy'.")
    value: str = Field(description="As the model card states it, e.g. '0.61 [0.57, 0.65]'.")


class ModelInfo(BaseModel):
    name: str
    kind: str
    title: str = Field(description="What the kind is, e.g. 'latent diffusion'.")
    resolution: int | None = None
    text_to_image: bool = False
    default: bool = Field(False, description="The model requests get when they name none.")
    options: list[OptionInfo] = Field([], description="The sampling options its kind takes.")
    tasks: list[Task] = Field([], description="The endpoints (by name) that take this model.")
    loras: bool = Field(False, description="Whether <lora:NAME:WEIGHT> tags apply to it.")
    inpaint_method: Literal["masked", "trained"] | None = Field(
        None, description="The inpaint method it takes, if it inpaints."
    )
    summary: str = Field("", description="The first paragraph of its model card.")
    figures: list[Figure] = Field([], description="Headline figures from its model card.")
    examples: str | None = Field(
        None, description="URL of its example grid (what it draws at its defaults), if its "
        "folder has one (`atelier export --examples`)."
    )  # fmt: skip


class AdapterInfo(BaseModel):
    name: str
    kind: str = Field(
        description="lora (use as <lora:NAME:WEIGHT> in a prompt) or embedding "
        "(its words load by themselves when a prompt uses them)."
    )
    base: str | None = Field(None, description="The model it was trained on, if known.")
    words: list[str] = Field([], description="An embedding's words; a LoRA's trained token.")


class ErrorBody(BaseModel):
    detail: str
