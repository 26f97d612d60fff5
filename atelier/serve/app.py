"""The HTTP API and web page: ``create_app(settings)`` returns a FastAPI app.

Every generating endpoint answers 202 at once with a job id; the job runs on the single worker
of :class:`~atelier.serve.jobs.JobQueue`. ``GET /v1/jobs/{id}`` reports status and results,
``GET /v1/jobs/{id}/events`` streams progress (server-sent events, with small previews), and
``DELETE /v1/jobs/{id}`` cancels between sampler steps. Result PNGs carry their parameters and
live under server-chosen names in the output folder; no path from a request touches the disk.

Hardening: a request is checked whole before it is queued (its model loaded, its images' sizes
against the model), so a bad one gets a 4xx, never a failed job; bodies are limited while they
stream in (``middleware.py``); error replies are one short line without absolute paths and
never echo the input (``errors.py``); every response carries security headers, and
``allowed_hosts`` answers only the Host names given.
"""

from __future__ import annotations

import json
import re
import secrets
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from atelier.diffusion.samplers import SAMPLER_NAMES
from atelier.eval.examples import EXAMPLES_FILE
from atelier.kinds.adapters import installed_adapters
from atelier.kinds.card import card_figures, card_summary
from atelier.kinds.folder import read_config, resolve
from atelier.kinds.registry import Listed, describe, list_models
from atelier.serve.errors import problem, public_message, public_problems
from atelier.serve.jobs import Job, JobQueue, QueueFull
from atelier.serve.middleware import BodyLimit, SecurityHeaders
from atelier.serve.runners import Models, Refused, Runners, ServeSettings, serves
from atelier.serve.schemas import (
    AdapterInfo,
    ErrorBody,
    Figure,
    Img2ImgRequest,
    InpaintRequest,
    JobCreated,
    JobView,
    ModelInfo,
    OptionInfo,
    OutpaintRequest,
    Progress,
    Txt2ImgRequest,
    UpscaleRequest,
    VariationsRequest,
    limit_problems,
)

STATIC = Path(__file__).parent / "static"
IMAGE_NAME = re.compile(r"^[0-9a-f]{16}-[0-9]{2}\.png$")


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
        # FastAPI's Swagger UI and ReDoc load from a CDN, blank offline: /docs is our own page,
        # drawn from /openapi.json by a script shipped in the package.
        docs_url=None,
        redoc_url=None,
        # 400: a body that is not JSON at all (FastAPI's own answer).
        responses={
            **auth_docs,
            400: {"model": ErrorBody},
            413: {"model": ErrorBody},
            429: {"model": ErrorBody},
        },  # fmt: skip
    )
    limits = settings.limits
    models = Models(default=settings.model, compile=settings.compile)
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
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(SecurityHeaders)  # added last: outermost, so on every answer

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
        detail = exc.detail
        detail = public_problems(detail) if isinstance(detail, list) else public_message(detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes each field's input: a 20 MB prompt would come back.
        return JSONResponse({"detail": public_problems(exc.errors())}, status_code=422)

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

    runners = Runners(settings, models)

    def enqueue(kind: str, req, run, batch_key=None) -> JobCreated:
        problems = limit_problems(req, limits)
        if problems:
            raise HTTPException(422, problems)
        if req.seed is None:
            req = req.model_copy(update={"seed": secrets.randbelow(2**31 - 1)})
        try:
            model = runners.model_for(kind, req)
        except Refused as err:  # a model of the wrong kind for the endpoint
            raise HTTPException(422, [problem(err.field, str(err))]) from None
        except (FileNotFoundError, ValueError) as err:
            raise HTTPException(404, str(err)) from None
        try:
            runners.check(kind, req, model)
        except Refused as err:
            raise HTTPException(422, [problem(err.field, str(err))]) from None
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
    def job_route(path: str):
        """POST PATH: queue a job and answer 202 with its id (every job route alike)."""
        return app.post(path, status_code=202, response_model=JobCreated, dependencies=guarded,
                        responses=job_docs)

    @job_route("/v1/txt2img")
    def txt2img(req: Txt2ImgRequest) -> JobCreated:
        options = tuple(sorted((req.options or {}).items()))
        key = ("txt2img", req.model or settings.model, req.steps, req.guidance,
               req.guidance_rescale, req.sampler, options, req.size,
               req.negative_prompt, req.clip_guidance, req.clip_model, req.classifier_guidance,
               req.classifier_model, req.cutouts)  # fmt: skip
        return enqueue("txt2img", req, runners.txt2img, batch_key=key)

    @job_route("/v1/img2img")
    def img2img(req: Img2ImgRequest) -> JobCreated:
        return enqueue("img2img", req, runners.edit)

    @job_route("/v1/inpaint")
    def inpaint(req: InpaintRequest) -> JobCreated:
        return enqueue("inpaint", req, runners.edit)

    @job_route("/v1/outpaint")
    def outpaint(req: OutpaintRequest) -> JobCreated:
        return enqueue("outpaint", req, runners.edit)

    @job_route("/v1/upscale")
    def upscale(req: UpscaleRequest) -> JobCreated:
        return enqueue("upscale", req, runners.edit)

    @job_route("/v1/variations")
    def variations(req: VariationsRequest) -> JobCreated:
        """An unCLIP model's variations of the image (DALL-E 2): its CLIP embedding decoded
        once per seed. A model of another kind is refused with 422."""
        return enqueue("variations", req, runners.variations)

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

        async def stream():
            while True:
                seen = job.version
                data = {"status": job.status, "step": job.step, "total": job.total}
                if job.preview is not None:
                    data["preview"] = job.preview
                yield f"event: progress\ndata: {json.dumps(data)}\n\n"
                if job.done:
                    yield f"event: {job.status}\ndata: {view(job).model_dump_json()}\n\n"
                    return
                # On the event loop, holding no thread: any number of clients may watch.
                await job.changed(seen)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get(
        "/v1/images/{name}", dependencies=guarded, response_class=FileResponse, responses=png_docs
    )
    def image(name: str) -> FileResponse:
        path = settings.output / name
        if not IMAGE_NAME.match(name) or not path.is_file():
            raise HTTPException(404, "no such image")
        return FileResponse(path, media_type="image/png")

    def model_info(m: Listed, default: Path) -> ModelInfo:
        own = m.facts.defaults
        options = [OptionInfo(**{**asdict(o), "default": getattr(own, o.name, o.default)})
                   for o in m.facts.options]  # fmt: skip
        does = serves(read_config(m.path), text_to_image=m.facts.text_to_image)
        return ModelInfo(
            name=m.name, kind=m.kind, title=m.facts.title, resolution=m.facts.resolution,
            text_to_image=m.facts.text_to_image, default=m.path.resolve() == default,
            options=options, tasks=list(does.tasks), loras=does.loras,
            inpaint_method=does.inpaint_method, summary=card_summary(m.path),
            figures=[Figure(name=k, value=v) for k, v in card_figures(m.path)],
            examples=(f"/v1/models/{quote(m.name, safe='')}/examples.png"
                      if (m.path / EXAMPLES_FILE).is_file() else None),
        )  # fmt: skip

    @app.get("/v1/models", response_model=list[ModelInfo], dependencies=guarded)
    def list_models_() -> list[ModelInfo]:
        """Every installed model with its kind, from the registry (and the server's default,
        which may be a folder of no known name): the options its kind takes with this model's
        defaults and bounds, the endpoints that take it, and its card's summary and headline
        figures (the page's model picker shows these)."""
        listed = list_models()
        default = resolve(settings.model).resolve()
        if all(m.path.resolve() != default for m in listed):
            listed.insert(0, describe(default))
        return [model_info(m, default) for m in listed]

    @app.get("/v1/models/{name}/examples.png", dependencies=guarded,
             response_class=FileResponse, responses=png_docs)  # fmt: skip
    def model_examples(name: str) -> FileResponse:
        """A listed model's example grid: only names ``/v1/models`` lists are looked up, so no
        path from a request reaches the file system."""
        folders = {m.name: m.path for m in list_models()}
        default = describe(resolve(settings.model))
        folders.setdefault(default.name, default.path)
        folder = folders.get(name)
        if folder is None or not (folder / EXAMPLES_FILE).is_file():
            raise HTTPException(404, f"no example grid for a model named {name!r}")
        return FileResponse(folder / EXAMPLES_FILE, media_type="image/png")

    @app.get("/v1/adapters", response_model=list[AdapterInfo], dependencies=guarded)
    def adapters() -> list[AdapterInfo]:
        """The LoRAs and textual-inversion embeddings installed on this server: a prompt names
        a LoRA as ``<lora:NAME:WEIGHT>`` and uses an embedding by its word."""
        return [AdapterInfo(name=a.name, kind=a.kind, base=a.base, words=list(a.words))
                for a in installed_adapters()]  # fmt: skip

    @app.get("/v1/samplers", response_model=list[str], dependencies=guarded)
    def samplers() -> list[str]:
        return list(SAMPLER_NAMES)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> Response:
        """The API reference, drawn from /openapi.json by the page itself (works offline)."""
        return HTMLResponse((STATIC / "docs.html").read_text())

    return app
