"""``atelier serve [--host 127.0.0.1] [--port 7860] [--model …] [--token …] [--max-queue N]
[--allowed-hosts NAMES] [--compile]``."""

from __future__ import annotations

from pathlib import Path

import typer

from atelier.cli.errors import fail
from atelier.kinds.default import DEFAULT_MODEL

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (loopback by default)."
    ),
    port: int = typer.Option(7860, "--port"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Default model name or folder."),
    token: str = typer.Option(None, "--token", help="Require 'Authorization: Bearer TOKEN'."),
    max_queue: int = typer.Option(16, "--max-queue", help="Waiting jobs before 429."),
    timeout: float = typer.Option(300.0, "--timeout", help="Per-job time limit in seconds."),
    cors: str = typer.Option(
        "", "--cors", help="Comma-separated allowed origins (off by default)."
    ),
    allowed_hosts: str | None = typer.Option(
        None,
        "--allowed-hosts",
        help="Comma-separated Host header names to answer ('*': any). Default: localhost, "
        "127.0.0.1 and ::1 on a loopback --host (a page on another site cannot reach the "
        "server through DNS rebinding); any otherwise.",
    ),
    no_batching: bool = typer.Option(False, "--no-batching", help="Run every job alone."),
    output: Path = typer.Option(Path("out/serve"), "-o", "--output", help="Where PNGs are kept."),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="Run diffusion models' UNets through torch.compile: about 1.2x the images per "
        "second, pixels within 2 levels of eager's in fp32 (the PNGs say compiled); compiles "
        "the default model's call shapes before serving: minutes the first time, less after "
        "from inductor's cache.",
    ),
) -> None:
    """Serve the REST API and the web page."""
    import uvicorn

    from atelier.kinds.folder import resolve
    from atelier.serve.app import ServeSettings, create_app
    from atelier.serve.schemas import Limits

    if max_queue < 1 or timeout <= 0:
        raise fail("--max-queue must be >= 1 and --timeout > 0")
    try:
        resolve(model)
    except FileNotFoundError as err:
        raise fail(str(err)) from None
    if host not in LOOPBACK and token is None:
        typer.echo(
            f"warning: serving on {host} without --token: anyone who can reach this port can "
            "use it", err=True,
        )  # fmt: skip
    if allowed_hosts is not None:
        hosts = tuple(h.strip() for h in allowed_hosts.split(",") if h.strip())
        if not hosts:
            raise fail("--allowed-hosts needs at least one name, or '*' for any")
        # What Starlette's TrustedHostMiddleware takes: a name, "*", or "*.example.org".
        bad = [h for h in hosts if h != "*" and "*" in h.removeprefix("*.")]
        if bad:
            raise fail(f"--allowed-hosts: {bad[0]!r} is not a name; wildcards are '*' or "
                       "'*.example.org'")  # fmt: skip
    else:
        hosts = LOOPBACK if host in LOOPBACK else ()
    settings = ServeSettings(
        model=model, output=output, token=token,
        cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()),
        allowed_hosts=() if "*" in hosts else hosts,
        limits=Limits(max_queue=max_queue, job_timeout_s=timeout), batching=not no_batching,
        compile=compile,
    )  # fmt: skip
    app = create_app(settings)
    if compile:
        import time

        start = time.perf_counter()
        typer.echo(f"compiling the UNet of {model} at every call shape a request uses "
                   "(minutes the first time; less from inductor's cache)")  # fmt: skip
        try:
            app.state.models.warm(say=lambda what: typer.echo(f"  compiling: {what}"))
        except (RuntimeError, ValueError, FileNotFoundError) as err:
            raise fail(f"cannot compile {model}: {err}") from None
        typer.echo(f"compiled in {time.perf_counter() - start:.0f} s")
    typer.echo(f"atelier serving {model} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
