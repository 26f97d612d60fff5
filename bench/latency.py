"""The latency a user feels, per model, measured side by side in one run: ``atelier --help``, a
cold ``atelier generate`` (a new process: imports, weights, one image), the warm Python API and a
warm server, each at one image and at ``--batch`` images, with ratios to the warm API's one image.

    OMP_NUM_THREADS=1 .venv/bin/python bench/latency.py [--models shapes-ldm-minilm,OTHER]
        [--runs 3] [--batch 8] [--warm-only] [--variants eager,compiled,bf16]

``--models`` takes any names or folders (a distilled model beside the default, say). Every figure
is a median of ``--runs`` (``--help`` of twice as many) at each model's own sampling defaults.
The server is ``atelier serve`` in its own process, as ``bench/serve_load.py`` starts it; its
batch is ``--batch`` requests sent at once, which its queue samples together. The UNet's calls of
a warm batch are counted too: ``fixed_batch`` widens them only where it checked the bits agree.
``--warm-only`` measures the warm Python API alone (a GAN beside the default at ``--batch 64``,
say); the last column compares each row's images per second with the first model's.
``--variants`` also runs a diffusion model's warm Python API in other runtimes, alternating with
eager fp32 run by run: ``compiled`` (``Model.compile``), ``bf16`` (``precision=bf16``),
``compiled-bf16``; it prints each one's first use (compiling every call shape), seconds and
images per second against eager at 1 and ``--batch`` images, and its pixels' largest difference
from eager's over the batch's images.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import serving  # noqa: E402

from atelier.kinds.default import DEFAULT_MODEL  # noqa: E402
from atelier.kinds.registry import load_text_to_image  # noqa: E402

PROMPT = "a red circle above a blue square"
ATELIER = [sys.executable, "-m", "atelier"]  # what the `atelier` console script runs
# How often a client asks after its job, as bench/serve_load.py does: every poll is a request the
# server's one process answers beside sampling, so polling faster slows what it measures.
POLL_S = 0.05
VARIANTS = ("eager", "compiled", "bf16", "compiled-bf16")


def median_of(runs: int, fn: Callable[[], object]) -> float:
    """Median wall seconds of ``runs`` calls of ``fn``."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def run_cli(*args: str) -> None:
    subprocess.run([*ATELIER, *args], check=True, capture_output=True, timeout=600)


def request(base: str, seed: int) -> None:
    """One txt2img request, polled until its image is done."""
    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/v1/txt2img", json={"prompt": PROMPT, "seed": seed})
        r.raise_for_status()
        job = r.json()["id"]
        while (view := client.get(f"/v1/jobs/{job}").json())["status"] not in ("done", "failed"):
            time.sleep(POLL_S)
        if view["status"] != "done":
            raise RuntimeError(f"the server failed a job: {view.get('error')}")


def unet_calls(model, batch: int) -> list[int]:
    """The row counts of the UNet's calls while the model draws ``batch`` images."""
    rows: list[int] = []
    hook = model.unet.register_forward_pre_hook(lambda _, args: rows.append(args[0].shape[0]))
    try:
        model([PROMPT] * batch, seeds=list(range(batch)))
    finally:
        hook.remove()
    return rows


def measure(name: str, runs: int, batch: int, warm_only: bool) -> list[tuple[str, float, int]]:
    """(what, seconds, images) for one model."""
    rows = []
    if not warm_only:
        with TemporaryDirectory() as out:
            run_cli("generate", PROMPT, "--seed", "0", "--model", name, "-o", out)  # disk cache
            cold = median_of(runs, lambda: run_cli("generate", PROMPT, "--seed", "0", "--model",
                                                   name, "-o", out))  # fmt: skip
        rows.append(("cold CLI: atelier generate, 1 image", cold, 1))
    model = load_text_to_image(name)
    model([PROMPT], seeds=[0])
    for n in (1, batch):
        seconds = median_of(runs, lambda n=n: model([PROMPT] * n, seeds=list(range(n))))
        rows.append((f"warm Python API, {n} image{'s' if n > 1 else ''} a call", seconds, n))
    if hasattr(model, "unet"):  # a GAN or a token model has none
        calls = unet_calls(model, batch)
        print(f"{name}: UNet rows a call, one image: {sorted(set(unet_calls(model, 1)))}; "
              f"{batch} images: {calls[:6]}... ({len(calls)} calls)")  # fmt: skip
    if warm_only:
        return rows
    with TemporaryDirectory() as out, serving(name, out, batching=True, max_queue=64) as base:
        request(base, 0)
        rows.append(("warm server, 1 request", median_of(runs, lambda: request(base, 1)), 1))

        def burst() -> None:
            with ThreadPoolExecutor(batch) as pool:
                list(pool.map(lambda k: request(base, 100 + k), range(batch)))

        rows.append((f"warm server, {batch} requests at once", median_of(runs, burst), batch))
    return rows


def variant_model(name: str, variant: str):
    """(model, options) of one variant: eager, compiled, bf16 or compiled-bf16."""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    model = load_text_to_image(name)
    if variant.startswith("compiled"):
        model.compile()
    precision = "bf16" if variant.endswith("bf16") else "fp32"
    return model, replace(model.defaults, precision=precision)


def measure_variants(name: str, variants: list[str], runs: int, batch: int) -> None:
    """Eager fp32 and ``variants`` of one diffusion model, side by side (see the docstring)."""
    import numpy as np

    variants = ["eager", *(v for v in variants if v != "eager")]
    drawn = {v: variant_model(name, v) for v in variants}
    first_use, pixels = {}, {}
    for v, (model, options) in drawn.items():
        start = time.perf_counter()
        for n in (1, batch):
            images = model([PROMPT] * n, seeds=list(range(n)), options=options)
        first_use[v] = time.perf_counter() - start
        pixels[v] = np.stack([np.asarray(im, dtype=np.int16) for im in images])
    seconds: dict[tuple[str, int], list[float]] = {}
    for _ in range(runs):
        for n in (1, batch):
            for v, (model, options) in drawn.items():
                start = time.perf_counter()
                model([PROMPT] * n, seeds=list(range(n)), options=options)
                seconds.setdefault((v, n), []).append(time.perf_counter() - start)
    med = {k: statistics.median(t) for k, t in seconds.items()}
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{name}, warm Python API by variant (medians of {runs}, alternating; load average "
          f"{load})\n")  # fmt: skip
    print(f"{'variant':<14} {'first use s':>11} {'1 image s':>10} {'x eager':>8} "
          f"{f'{batch} images s/image':>18} {'x eager':>8} "
          f"{'max |delta| vs eager':>21}")  # fmt: skip
    for v in variants:
        one, many = med[(v, 1)], med[(v, batch)] / batch
        delta = int(np.abs(pixels[v] - pixels["eager"]).max())
        print(f"{v:<14} {first_use[v]:>11.1f} {one:>10.3f} {med[('eager', 1)] / one:>7.2f}x "
              f"{many:>18.3f} {med[('eager', batch)] / batch / many:>7.2f}x "
              f"{delta:>21}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODEL, help="Comma-separated names or folders.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warm-only", action="store_true", help="Only the warm Python API.")
    parser.add_argument("--variants", default="eager",
                        help="Also: compiled, bf16, compiled-bf16 (comma-separated).")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    if not args.warm_only:
        help_seconds = median_of(2 * args.runs, lambda: run_cli("--help"))
    results = {name: measure(name, args.runs, args.batch, args.warm_only)
               for name in args.models.split(",")}  # fmt: skip
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} "
          f"cores, load average {load}; medians of {args.runs}\n")  # fmt: skip
    if not args.warm_only:
        print(f"atelier --help: {help_seconds:.3f} s\n")
    first = dict(((w, n), s) for w, s, n in next(iter(results.values())))
    print(f"{'model':<22} {'what':<38} {'s':>7} {'s/image':>8} {'x warm API, 1 image':>20} "
          f"{'images/s x first':>17}")  # fmt: skip
    for name, rows in results.items():
        base = next(s for what, s, n in rows if what.startswith("warm Python API") and n == 1)
        for what, seconds, n in rows:
            vs_first = first[(what, n)] / seconds
            print(f"{Path(name).name:<22} {what:<38} {seconds:>7.3f} {seconds / n:>8.3f} "
                  f"{seconds / n / base:>19.2f}x {vs_first:>16.3f}x")  # fmt: skip
    if args.variants != "eager":
        for name in args.models.split(","):
            measure_variants(name, args.variants.split(","), args.runs, args.batch)


if __name__ == "__main__":
    main()
