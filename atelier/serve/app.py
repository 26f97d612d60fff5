"""The HTTP API and web page: ``create_app(settings)`` returns a FastAPI app.

Every generating endpoint answers 202 at once with a job id; the job runs on the single worker
of :class:`~atelier.serve.jobs.JobQueue`. ``GET /v1/jobs/{id}`` reports status and results,
``GET /v1/jobs/{id}/events`` streams progress (server-sent events, with small previews), and
``DELETE /v1/jobs/{id}`` cancels between sampler steps. Result PNGs carry their parameters and
live under server-chosen names in the output folder; no path from a request touches the disk.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import secrets
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from atelier.diffusion.samplers import SAMPLER_NAMES
from atelier.pipelines.metadata import GenerationParams, save_png, to_a1111
from atelier.pipelines.model_folder import DEFAULT_MODEL, Model, load_model, model_dirs
from atelier.serve.jobs import Job, JobQueue, QueueFull
from atelier.serve.schemas import (
    ErrorBody,
    ImageResult,
    Img2ImgRequest,
    InpaintRequest,
    JobCreated,
    JobView,
    Limits,
    ModelInfo,
    OutpaintRequest,
    Progress,
    Txt2ImgRequest,
    UpscaleRequest,
    decode_image,
    limit_problems,
)

STATIC = Path(__file__).parent / "static"
IMAGE_NAME = re.compile(r"^[0-9a-f]{16}-[0-9]{2}\.png$")


@dataclass(frozen=True)
class ServeSettings:
    model: str = DEFAULT_MODEL
    output: Path = Path("out/serve")
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    batching: bool = True
    inline_images: bool = False  # also return each PNG as base64 in the job view


class Models:
    """Loaded models by name, loaded on first use (one lock: the worker is the only user)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Model:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load_model(name)
            return self._loaded[name]

    def upscaler(self, name: str):
        from atelier.pipelines.upscale import load_upscaler

        with self._lock:
            key = f"upscaler:{name}"
            if key not in self._loaded:
                self._loaded[key] = load_upscaler(name)
            return self._loaded[key]


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def create_app(settings: ServeSettings = ServeSettings()) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.queue.close()

    # The bearer scheme's 401 is documented only when a token is configured (see ``guarded``).
    auth_docs = {401: {"model": ErrorBody}} if settings.token is not None else {}
    app = FastAPI(
        lifespan=lifespan,
        title="atelier",
        version="1",
        description="Text-to-image generation and editing on a CPU: a bounded job queue.",
        # 400: a body that is not JSON at all (FastAPI's own answer).
        responses={
            **auth_docs,
            400: {"model": ErrorBody},
            413: {"model": ErrorBody},
            429: {"model": ErrorBody},
        },  # fmt: skip
    )
    limits = settings.limits
    models = Models()
    queue = JobQueue(
        max_queue=limits.max_queue,
        job_timeout_s=limits.job_timeout_s,
        batching=settings.batching,
        max_batch=limits.max_batch,
    )
    app.state.queue, app.state.models, app.state.settings = queue, models, settings
    settings.output.mkdir(parents=True, exist_ok=True)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names only the first route matching the path; a path served by
            # several routes (GET and DELETE /v1/jobs/{id}) must list all of their methods.
            allowed = sorted(
                {
                    method
                    for route in app.routes
                    if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                    for method in route.methods
                }
            )
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body over {limits.max_body_bytes} bytes"}, status_code=413
            )
        return await call_next(request)

    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # Attached only when a token is set (``guarded`` below).
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    # The schema tells the truth about this server: the bearer scheme (and its 401) appear
    # only when a token is configured.
    guarded = [Depends(authorize)] if settings.token is not None else []
    # A request naming a model this server cannot find is answered 404.
    job_docs = {404: {"model": ErrorBody}}

    # ---------------------------------------------------------------- results and running
    def save_images(job: Job, loaded: Model | None, images, seeds, options, mode, extra, prompt):
        out = []
        for k, (image, seed) in enumerate(zip(images, seeds)):
            params = GenerationParams.of(
                image, prompt=prompt, seed=seed, options=options,
                model=loaded.config.name if loaded else extra.get("model", "-"),
                model_hash=loaded.model_hash if loaded else "-",
                negative_prompt=getattr(job.payload, "negative_prompt", ""), mode=mode,
                extra=extra,
            )  # fmt: skip
            name = f"{job.id}-{k:02d}.png"
            save_png(image, settings.output / name, params)
            out.append(
                ImageResult(
                    url=f"/v1/images/{name}",
                    seed=seed,
                    parameters=to_a1111(params),
                    png_base64=_png_base64(image) if settings.inline_images else None,
                )
            )
        return out

    def options_for(loaded: Model, req, *, keeps_source: bool = False) -> Any:
        d = loaded.config.defaults
        if keeps_source:  # img2img: the model's sampler without its per-step noise
            from atelier.pipelines.editing import source_keeping

            d = source_keeping(d)
        return d.overridden(
            steps=req.steps,
            guidance=req.guidance,
            guidance_rescale=req.guidance_rescale,
            sampler=req.sampler,
        )

    def previewer(pipe):
        def make(info) -> str:
            small = pipe.preview(info.denoised[:1])[0]
            from atelier.data.base import tensor_to_pil

            return _png_base64(tensor_to_pil(small))

        return make

    def run_txt2img(jobs: list[Job], on_step) -> list[Any]:
        req0 = jobs[0].payload
        loaded = models.get(req0.model or settings.model)
        options = options_for(loaded, req0)
        pipe = loaded.pipeline()
        size = None
        if req0.size:
            side = req0.size // pipe.resolution_factor
            size = (side, side)
        prompts, seeds = [], []
        for job in jobs:
            prompts += [job.payload.prompt] * job.payload.n
            seeds += [job.payload.seed + k for k in range(job.payload.n)]
        preview = previewer(pipe)
        images = pipe(
            prompts,
            seeds=seeds,
            negative_prompt=req0.negative_prompt,
            size=size,
            options=options,
            callback=lambda info: on_step(info, lambda: preview(info)),
        )
        results, start = [], 0
        for job in jobs:
            n = job.payload.n
            results.append(
                save_images(
                    job,
                    loaded,
                    images[start : start + n],
                    seeds[start : start + n],
                    options,
                    "txt2img",
                    {},
                    job.payload.prompt,
                )
            )
            start += n
        return results

    def run_edit(jobs: list[Job], on_step) -> list[Any]:
        from atelier.pipelines.editing import Editor

        (job,) = jobs
        req = job.payload
        if job.kind == "upscale":
            upscaler = models.upscaler(req.model or "shapes-sr-32-64")
            image = decode_image(req.image)
            out = upscaler([image], seeds=[req.seed], callback=lambda info: on_step(info))
            return [
                save_images(
                    job,
                    None,
                    out,
                    [req.seed],
                    upscaler.config.defaults,
                    "upscale",
                    {"model": upscaler.config.name},
                    "",
                )
            ]
        loaded = models.get(req.model or settings.model)
        options = options_for(loaded, req, keeps_source=job.kind == "img2img")
        editor = Editor(loaded.pipeline())
        preview = previewer(editor.pipe)

        def callback(info):
            on_step(info, lambda: preview(info))

        image = decode_image(req.image)
        if job.kind == "img2img":
            seeds = [req.seed + k for k in range(req.n)]
            out = editor.img2img(
                [image] * req.n,
                [req.prompt] * req.n,
                seeds=seeds,
                strength=req.strength,
                negative_prompt=req.negative_prompt,
                options=options,
                callback=callback,
            )
            extra = {"strength": req.strength}
        elif job.kind == "inpaint":
            seeds = [req.seed]
            out = editor.inpaint(
                [image],
                [decode_image(req.mask, what="mask")],
                [req.prompt],
                seeds=seeds,
                method=req.method,
                grow=req.grow,
                feather=req.feather,
                negative_prompt=req.negative_prompt,
                options=options,
                callback=callback,
            )
            extra = {"method": req.method, "grow": req.grow, "feather": req.feather}
        else:
            seeds = [req.seed]
            out = [
                editor.outpaint(
                    image,
                    req.prompt,
                    seed=req.seed,
                    left=req.left,
                    right=req.right,
                    top=req.top,
                    bottom=req.bottom,
                    options=options,
                )
            ]
            extra = {"left": req.left, "right": req.right, "top": req.top, "bottom": req.bottom}
        return [save_images(job, loaded, out, seeds, options, job.kind, extra, req.prompt)]

    def enqueue(kind: str, req, run, batch_key=None) -> JobCreated:
        problems = limit_problems(req, limits)
        if problems:
            raise HTTPException(422, problems)
        if req.seed is None:
            req = req.model_copy(update={"seed": secrets.randbelow(2**31 - 1)})
        name = getattr(req, "model", None)
        try:
            if kind == "upscale":
                models.upscaler(name or "shapes-sr-32-64")
            elif name is not None:
                models.get(name)
        except (FileNotFoundError, ValueError) as err:
            raise HTTPException(404, str(err)) from None
        try:
            job = queue.submit(Job(kind, req, run, batch_key=batch_key))
        except QueueFull as err:
            raise HTTPException(
                429, str(err), headers={"Retry-After": str(err.retry_after)}
            ) from None
        return JobCreated(
            id=job.id,
            status=job.status,
            status_url=f"/v1/jobs/{job.id}",
            events_url=f"/v1/jobs/{job.id}/events",
        )

    # ---------------------------------------------------------------- endpoints
    @app.post(
        "/v1/txt2img",
        status_code=202,
        response_model=JobCreated,
        dependencies=guarded,
        responses=job_docs,
    )
    def txt2img(req: Txt2ImgRequest) -> JobCreated:
        key = (
            "txt2img",
            req.model or settings.model,
            req.steps,
            req.guidance,
            req.sampler,
            req.size,
            req.negative_prompt,
        )
        return enqueue("txt2img", req, run_txt2img, batch_key=key)

    @app.post(
        "/v1/img2img",
        status_code=202,
        response_model=JobCreated,
        dependencies=guarded,
        responses=job_docs,
    )
    def img2img(req: Img2ImgRequest) -> JobCreated:
        return enqueue("img2img", req, run_edit)

    @app.post(
        "/v1/inpaint",
        status_code=202,
        response_model=JobCreated,
        dependencies=guarded,
        responses=job_docs,
    )
    def inpaint(req: InpaintRequest) -> JobCreated:
        return enqueue("inpaint", req, run_edit)

    @app.post(
        "/v1/outpaint",
        status_code=202,
        response_model=JobCreated,
        dependencies=guarded,
        responses=job_docs,
    )
    def outpaint(req: OutpaintRequest) -> JobCreated:
        return enqueue("outpaint", req, run_edit)

    @app.post(
        "/v1/upscale",
        status_code=202,
        response_model=JobCreated,
        dependencies=guarded,
        responses=job_docs,
    )
    def upscale(req: UpscaleRequest) -> JobCreated:
        return enqueue("upscale", req, run_edit)

    def view(job: Job) -> JobView:
        images = job.result if job.status == "done" and job.result else []
        return JobView(
            id=job.id,
            kind=job.kind,
            status=job.status,
            progress=Progress(step=job.step, total=job.total),
            images=images,
            error=job.error,
            queue_position=queue.position(job),
        )

    def find(job_id: str) -> Job:
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobView,
        dependencies=guarded,
        responses={404: {"model": ErrorBody}},
    )
    def get_job(job_id: str) -> JobView:
        return view(find(job_id))

    @app.delete(
        "/v1/jobs/{job_id}",
        response_model=JobView,
        dependencies=guarded,
        responses={404: {"model": ErrorBody}},
    )
    def cancel_job(job_id: str) -> JobView:
        find(job_id)
        return view(queue.cancel(job_id))

    stream_docs = {200: {"content": {"text/event-stream": {}}}, 404: {"model": ErrorBody}}
    png_docs = {200: {"content": {"image/png": {}}}, 404: {"model": ErrorBody}}

    @app.get("/v1/jobs/{job_id}/events", dependencies=guarded, responses=stream_docs)
    async def job_events(job_id: str) -> StreamingResponse:
        job = find(job_id)

        def wait(seen: int) -> int:
            with job.events:
                job.events.wait_for(lambda: job.version != seen or job.done, timeout=15)
                return job.version

        async def stream():
            seen = -1
            while True:
                data = {"status": job.status, "step": job.step, "total": job.total}
                if job.preview is not None:
                    data["preview"] = job.preview
                yield f"event: progress\ndata: {json.dumps(data)}\n\n"
                if job.done:
                    yield f"event: {job.status}\ndata: {view(job).model_dump_json()}\n\n"
                    return
                seen = await asyncio.to_thread(wait, seen)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get(
        "/v1/images/{name}", dependencies=guarded, response_class=FileResponse, responses=png_docs
    )
    def image(name: str) -> FileResponse:
        path = settings.output / name
        if not IMAGE_NAME.match(name) or not path.is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(path, media_type="image/png")

    @app.get("/v1/models", response_model=list[ModelInfo], dependencies=guarded)
    def list_models() -> list[ModelInfo]:
        seen: dict[str, ModelInfo] = {}
        for root in model_dirs():
            for config in sorted(root.glob("*/config.json")) if root.is_dir() else []:
                name = config.parent.name
                if name in seen:
                    continue
                try:
                    data = json.loads(config.read_text())
                except (OSError, ValueError):
                    continue
                seen[name] = ModelInfo(
                    name=name, kind=str(data.get("kind", "?")), resolution=data.get("resolution")
                )
        return list(seen.values())

    @app.get("/v1/samplers", response_model=list[str], dependencies=guarded)
    def samplers() -> list[str]:
        return list(SAMPLER_NAMES)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        return HTMLResponse((STATIC / "index.html").read_text())

    return app
