"""The work behind each endpoint, apart from HTTP: loading models through their kinds, checking a
request against its model before it is queued, turning a request into a model's options,
running a batch of jobs and saving their PNGs. ``app.py`` wires these to routes; tests call
them directly.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from atelier.data.base import tensor_to_pil
from atelier.kinds import diffusion, unclip
from atelier.kinds.adapters import installed_loras
from atelier.kinds.base import TextToImage, with_options
from atelier.kinds.default import DEFAULT_MODEL
from atelier.kinds.folder import known_models
from atelier.kinds.registry import describe, load_model, load_painter, load_text_to_image
from atelier.kinds.token_model import TokenModel
from atelier.pipelines.lora_tags import split_lora_tags
from atelier.pipelines.metadata import GenerationParams, save_png, to_a1111
from atelier.pipelines.runtime import check_precision
from atelier.serve.jobs import Job
from atelier.serve.schemas import ImageResult, Limits, decode_image, image_size

DEFAULT_UPSCALER = "shapes-sr-32-64"
# The request fields that are diffusion's sampling options (other families send ``options``).
DIFFUSION_FIELDS = ("steps", "guidance", "guidance_rescale", "sampler")


@dataclass(frozen=True)
class ServeSettings:
    model: str = DEFAULT_MODEL
    output: Path = Path("out/serve")
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host header names answered; () answers any
    limits: Limits = field(default_factory=Limits)
    batching: bool = True
    inline_images: bool = False  # also return each PNG as base64 in the job view
    compile: bool = False  # diffusion models' UNets through torch.compile (Model.compile)


@dataclass(frozen=True)
class Serves:
    """What the server does with a model, from its config.json alone: the endpoints that take
    it, whether LoRA tags apply, and how it inpaints."""

    tasks: tuple[str, ...] = ()
    loras: bool = False
    inpaint_method: str | None = None


def serves(config: dict[str, Any], *, text_to_image: bool) -> Serves:
    """What the server does with a model folder of this ``config`` (see :meth:`Runners.check`,
    which refuses the rest): a diffusion model draws and edits, or, with an inpainting UNet
    (the mask and the masked image as extra inputs: 2 C + 1 channels), only inpaints; any
    other text-to-image kind (a new family included) draws."""
    kind = config.get("kind")
    if kind in ("latent", "pixel"):
        unet = config.get("unet") or {}
        if unet.get("in_channels") == 2 * unet.get("out_channels", 0) + 1:
            return Serves(("inpaint",), loras=True, inpaint_method="trained")
        return Serves(("txt2img", "img2img", "inpaint", "outpaint"), loras=True,
                      inpaint_method="masked")  # fmt: skip
    if kind in ("dalle", "maskgit"):
        return Serves(("txt2img", "inpaint", "outpaint"), inpaint_method="masked")
    if kind == "unclip":
        return Serves(("txt2img", "variations"))
    if kind == "upscaler":
        return Serves(("upscale",))
    return Serves(("txt2img",) if text_to_image else ())


class Refused(ValueError):
    """A request its model cannot serve, found before it is queued; ``field`` is the body field
    to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Models:
    """Loaded models by name, loaded on first use through the registry (one lock: the worker is
    the only user once a request has been accepted)."""

    def __init__(self, default: str | None = None, *, compile: bool = False) -> None:
        self._loaded: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.default = default
        self.compile = compile  # every diffusion model loaded, compiled (Model.compile)

    def _get(self, role: str, name: str, load) -> Any:
        # A request names an installed model, never a folder of the server's disk.
        if name != self.default and name not in known_models():
            raise FileNotFoundError(
                f"no model named {name!r} on this server; GET /v1/models lists them"
            )
        with self._lock:
            if (role, name) not in self._loaded:
                model = load(name)
                if self.compile and isinstance(model, diffusion.Model):
                    model.compile()
                self._loaded[role, name] = model
            return self._loaded[role, name]

    def warm(self, say) -> None:
        """Load the default model for text-to-image and, compiling, draw at every call shape
        its requests use (``Model.warm``), so the first requests wait for no compiler."""
        model = self.text_to_image(self.default or DEFAULT_MODEL)
        if self.compile and isinstance(model, diffusion.Model):
            model.warm(say=say)

    def text_to_image(self, name: str) -> TextToImage:
        return self._get("t2i", name, load_text_to_image)

    def diffusion(self, name: str) -> diffusion.Model:
        """A diffusion model, for the edits only diffusion can make."""
        return self._get("diffusion", name, lambda n: load_model(n, want=diffusion.KIND))

    def painter(self, name: str) -> diffusion.Model | TokenModel:
        """A model that inpaints and outpaints: diffusion, or a token model."""
        return self._get("painter", name, load_painter)

    def steered(self, model: Any, spec: Any) -> Any:
        """``model`` steered by ``spec`` (a :class:`~atelier.kinds.steering.SteerSpec`), its
        guide an installed model, kept loaded for the next request that names it."""
        from atelier.kinds.steering import steered

        if spec.model not in known_models():
            raise FileNotFoundError(
                f"no model named {spec.model!r} on this server; GET /v1/models lists them"
            )
        with self._lock:
            key = ("steered", f"{model.name}|{sorted(spec.to_record().items())}")
            if key not in self._loaded:
                self._loaded[key] = steered(model, spec)
            return self._loaded[key]

    def upscaler(self, name: str):
        from atelier.kinds import upscaler

        return self._get("upscaler", name, lambda n: load_model(n, want=upscaler.KIND))

    def unclip(self, name: str) -> unclip.UnCLIPModel:
        """An unCLIP model, for variations of an image's CLIP embedding; a model of another kind
        is :class:`Refused`, naming its kind and what to send instead."""

        def load(n: str) -> unclip.UnCLIPModel:
            listed = describe(n)
            if listed.kind != "unclip":
                raise Refused("model", f"{listed.name} is a {listed.facts.title} model (kind "
                              f"{listed.kind}): variations decode an image's CLIP embedding, "
                              "which only an unCLIP model (kind unclip) does; name one in "
                              "'model' (the model list gives each model's kind)")  # fmt: skip
            return load_model(n, want=unclip.KIND)

        return self._get("unclip", name, load)


def request_options(model: TextToImage, req: Any, *, keeps_source: bool = False) -> Any:
    """The model's options with the request's: diffusion's fields and the generic ``options``
    map; an option the model's kind does not take is a ValueError naming the ones it takes.
    ``keeps_source`` (img2img): the model's sampler without its per-step noise."""
    base = model.defaults
    if keeps_source:
        from atelier.pipelines.editing import source_keeping

        base = source_keeping(base)
    given = {k: getattr(req, k) for k in DIFFUSION_FIELDS if getattr(req, k, None) is not None}
    given |= getattr(req, "options", None) or {}
    return with_options(base, given, who=model.name)


def request_steering(req: Any) -> Any:
    """The request's :class:`~atelier.kinds.steering.SteerSpec`, or None when it steers not."""
    from atelier.kinds.steering import DEFAULT_GUIDES, SteerSpec

    clip = getattr(req, "clip_guidance", None)
    classifier = getattr(req, "classifier_guidance", None)
    if clip is None and classifier is None:
        return None
    method = "clip" if clip is not None else "classifier"
    model = getattr(req, f"{method}_model", None) or DEFAULT_GUIDES[method]
    cutouts = getattr(req, "cutouts", None)
    return SteerSpec(method, clip if clip is not None else classifier, model,
                     **({"cutouts": cutouts} if cutouts is not None else {}))  # fmt: skip


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def previewer(pipe):
    """A function of a step's info making a small preview PNG (base64) of its first image."""

    def make(info) -> str:
        return png_base64(tensor_to_pil(pipe.preview(info.denoised[:1])[0]))

    return make


class Runners:
    """``txt2img``, ``edit`` and ``variations`` (each ``(jobs, on_step)``): what the job queue
    runs."""

    def __init__(self, settings: ServeSettings, models: Models) -> None:
        self.settings, self.models = settings, models

    def model_for(self, kind: str, req: Any) -> Any:
        """The model a request of ``kind`` runs on, loaded now so that a missing or broken one
        is refused before queueing (FileNotFoundError or ValueError naming it)."""
        name = getattr(req, "model", None)
        if kind == "upscale":
            return self.models.upscaler(name or DEFAULT_UPSCALER)
        if kind == "txt2img":
            return self.models.text_to_image(name or self.settings.model)
        if kind in ("inpaint", "outpaint"):
            return self.models.painter(name or self.settings.model)
        if kind == "variations":
            return self.models.unclip(name or self.settings.model)
        return self.models.diffusion(name or self.settings.model)

    def check(self, kind: str, req: Any, model: Any) -> None:
        """Everything the job would find wrong with ``req`` on ``model``, found now: raises
        :class:`Refused` naming the field, so a bad request gets a 422 instead of a failed job."""
        if kind == "upscale":
            low = model.config.low
            w, h = image_size(req.image)
            if (w, h) != (low, low):
                high = model.config.high
                raise Refused("image", f"this upscaler takes {low}x{low} images, got {w}x{h}; "
                              f"resize to {low} px first (it makes {high} px)")  # fmt: skip
            return
        self.check_loras(req, model)
        try:
            options = request_options(model, req, keeps_source=kind == "img2img")
            if isinstance(model, diffusion.Model):
                check_precision(options.precision, model.device)
        except ValueError as err:
            raise Refused("options", str(err)) from None
        spec = request_steering(req)
        if spec is not None:
            try:
                self.models.steered(model, spec)
            except (FileNotFoundError, ValueError) as err:
                raise Refused(f"{spec.method}_guidance", str(err)) from None
        if isinstance(model, TokenModel) and kind in ("inpaint", "outpaint"):
            self.check_token_edit(kind, req, model)
            return
        if not isinstance(model, diffusion.Model):
            return  # another kind's sizes are its own; the job reports what it refuses
        from atelier.pipelines.editing import Editor

        try:
            editor = Editor(model.pipeline(size=getattr(req, "size", None)))
        except ValueError as err:
            raise Refused("size", str(err)) from None
        inpainting = editor.is_inpainting_model
        if kind in ("txt2img", "img2img") and inpainting:
            raise Refused("model", f"{model.name} is an inpainting model: use it with "
                          "/v1/inpaint and method 'trained'")  # fmt: skip
        if kind == "inpaint" and req.method == "trained" and not inpainting:
            raise Refused(
                "method",
                "method 'trained' needs an inpainting model (e.g. "
                f"shapes-ldm-inpaint); {model.name} is not one: use 'masked'",
            )
        if kind == "inpaint" and req.method == "masked" and inpainting:
            raise Refused("method", f"{model.name} is an inpainting model: use method 'trained'")
        if kind in ("img2img", "inpaint", "outpaint"):
            w, h = image_size(req.image)
            if kind == "outpaint":
                w, h = w + req.left + req.right, h + req.top + req.bottom
            m = editor.multiple
            if w % m or h % m:
                what = "the outpainted image" if kind == "outpaint" else "the image"
                raise Refused("image", f"{what} is {w}x{h}; {model.name} needs sides that are "
                              f"multiples of {m}")  # fmt: skip

    def check_loras(self, req: Any, model: Any) -> None:
        """A prompt's ``<lora:NAME:WEIGHT>`` tags name LoRAs installed on this server (never a
        file of its disk) for a diffusion model, and fit it."""
        _, specs = split_lora_tags(getattr(req, "prompt", ""))
        if not specs:
            return
        if not isinstance(model, diffusion.Model):
            raise Refused("prompt", f"{model.name} is not a diffusion model: <lora:...> tags "
                          "adapt the UNet of one")  # fmt: skip
        installed = installed_loras()
        for name, _ in specs:
            if name not in installed:
                raise Refused("prompt", f"no LoRA named {name!r} on this server; installed: "
                              f"{', '.join(installed) or 'none'}")  # fmt: skip
        try:
            for name, _ in specs:
                model.lora(name)  # loaded and checked against the model, not attached
        except ValueError as err:
            raise Refused("prompt", str(err)) from None

    def check_token_edit(self, kind: str, req: Any, model: TokenModel) -> None:
        """What a token model cannot inpaint or outpaint: diffusion's trained method, and any
        image or canvas that is not the model's size (its grid is fixed)."""
        from atelier.pipelines.token_editing import TokenEditor

        if kind == "inpaint" and req.method != "masked":
            raise Refused("method", f"{model.name} is a {model.family.label}, which inpaints by "
                          "masking the tokens of the region; method 'trained' is for diffusion "
                          "inpainting models: use 'masked'")  # fmt: skip
        editor = TokenEditor(model.pipeline())
        w, h = image_size(req.image)
        try:
            if kind == "inpaint":
                editor.check_image(w, h)
            else:
                editor.check_outpaint(w, h, left=req.left, right=req.right, top=req.top,
                                      bottom=req.bottom)  # fmt: skip
        except ValueError as err:
            raise Refused("image", str(err)) from None

    def save_images(self, job: Job, name: str, model_hash: str, images, seeds, options, mode,
                    extra, prompt, runtime: str = "eager") -> list[ImageResult]:  # fmt: skip
        out = []
        for k, (image, seed) in enumerate(zip(images, seeds)):
            params = GenerationParams.of(
                image, prompt=prompt, seed=seed, options=options, model=name,
                model_hash=model_hash, negative_prompt=getattr(job.payload, "negative_prompt", ""),
                mode=mode, extra=extra, runtime=runtime,
            )  # fmt: skip
            file = f"{job.id}-{k:02d}.png"
            save_png(image, self.settings.output / file, params)
            inline = png_base64(image) if self.settings.inline_images else None
            out.append(ImageResult(url=f"/v1/images/{file}", seed=seed,
                                   parameters=to_a1111(params), png_base64=inline))  # fmt: skip
        return out

    def txt2img(self, jobs: list[Job], on_step) -> list[Any]:
        req0 = jobs[0].payload
        model = self.models.text_to_image(req0.model or self.settings.model)
        options = request_options(model, req0)
        spec = request_steering(req0)
        extra = {"steer": spec.to_record()} if spec is not None else {}
        drawn = self.models.steered(model, spec) if spec is not None else model
        prompts, seeds = [], []
        for job in jobs:
            prompts += [job.payload.prompt] * job.payload.n
            seeds += [job.payload.seed + k for k in range(job.payload.n)]
        preview = previewer(model.pipeline()) if isinstance(model, diffusion.Model) else None
        images = drawn(
            prompts, seeds=seeds, negative_prompt=req0.negative_prompt, size=req0.size,
            options=options,
            callback=lambda info: on_step(info, (lambda: preview(info)) if preview else None),
        )  # fmt: skip
        results, start = [], 0
        for job in jobs:
            n = job.payload.n
            results.append(self.save_images(
                job, model.name, model.model_hash, images[start : start + n],
                seeds[start : start + n], options, "txt2img", extra, job.payload.prompt,
                getattr(model, "runtime", "eager"),
            ))  # fmt: skip
            start += n
        return results

    def edit(self, jobs: list[Job], on_step) -> list[Any]:
        from atelier.pipelines.editing import Editor
        from atelier.pipelines.token_editing import TokenEditor

        (job,) = jobs
        req = job.payload
        if job.kind == "upscale":
            upscaler = self.models.upscaler(req.model or DEFAULT_UPSCALER)
            image = decode_image(req.image)
            out = upscaler([image], seeds=[req.seed], callback=lambda info: on_step(info))
            return [self.save_images(job, upscaler.config.name, "-", out, [req.seed],
                                     upscaler.config.defaults, "upscale", {}, "")]  # fmt: skip
        model = self.model_for(job.kind, req)
        options = request_options(model, req, keeps_source=job.kind == "img2img")
        if isinstance(model, TokenModel):
            editor: Editor | TokenEditor = TokenEditor(model.pipeline())
            how: dict[str, Any] = {}  # a token model inpaints one way: masking its tokens
            text = req.prompt

            def callback(info):
                on_step(info, None)
        else:
            text = model.take_loras(req.prompt)
            editor = Editor(model.pipeline())  # after the LoRAs attach: it runs them eager
            how = {"method": req.method} if job.kind == "inpaint" else {}
            preview = previewer(editor.pipe)

            def callback(info):
                on_step(info, lambda: preview(info))

        image = decode_image(req.image)
        common = {"negative_prompt": req.negative_prompt, "options": options,
                  "callback": callback}  # fmt: skip
        if job.kind == "img2img":
            seeds = [req.seed + k for k in range(req.n)]
            out = editor.img2img([image] * req.n, [text] * req.n, seeds=seeds,
                                 strength=req.strength, **common)  # fmt: skip
            extra = {"strength": req.strength}
        elif job.kind == "inpaint":
            seeds = [req.seed]
            out = editor.inpaint([image], [decode_image(req.mask, what="mask")], [text],
                                 seeds=seeds, grow=req.grow, feather=req.feather, **how,
                                 **common)  # fmt: skip
            extra = {"method": req.method, "grow": req.grow, "feather": req.feather}
        else:
            seeds = [req.seed]
            pads = {"left": req.left, "right": req.right, "top": req.top, "bottom": req.bottom}
            out = [editor.outpaint(image, text, seed=req.seed, **pads, **common)]
            extra = pads
        return [self.save_images(job, model.name, model.model_hash, out, seeds, options,
                                 job.kind, extra, req.prompt,
                                 getattr(model, "runtime", "eager"))]  # fmt: skip

    def variations(self, jobs: list[Job], on_step) -> list[Any]:
        """An unCLIP model's variations: one image per seed, decoded from the request image's
        CLIP embedding, with the request's prompt as the optional caption."""
        (job,) = jobs
        req = job.payload
        model = self.models.unclip(req.model or self.settings.model)
        options = request_options(model, req)
        seeds = [req.seed + k for k in range(req.n)]
        preview = previewer(model.pipeline().decoder)
        out = model.variations(
            decode_image(req.image), seeds=seeds, prompt=req.prompt,
            negative_prompt=req.negative_prompt, options=options,
            callback=lambda info: on_step(info, lambda: preview(info)),
        )  # fmt: skip
        return [self.save_images(job, model.name, model.model_hash, out, seeds, options,
                                 "variations", {"embedding": "clip"}, req.prompt)]  # fmt: skip
