"""The latency a user feels, per model, measured side by side in one run: ``atelier --help``, a
cold ``atelier generate`` (a new process: imports, weights, one image), the warm Python API and a
warm server, each at one image and at ``--batch`` images, with ratios to the warm API's one image.

    OMP_NUM_THREADS=1 .venv/bin/python bench/latency.py [--models shapes-ldm-minilm,OTHER]
        [--runs 3] [--batch 8] [--warm-only]

``--models`` takes any names or folders (a distilled model beside the default, say). Every figure
is a median of ``--runs`` (``--help`` of twice as many) at each model's own sampling defaults.
The server is ``atelier serve`` in its own process, as ``bench/serve_load.py`` starts it; its
batch is ``--batch`` requests sent at once, which its queue samples together. The UNet's calls of
a warm batch are counted too: ``fixed_batch`` widens them only where it checked the bits agree.
``--warm-only`` measures the warm Python API alone (a GAN beside the default at ``--batch 64``,
say); the last column compares each row's images per second with the first model's.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODEL, help="Comma-separated names or folders.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warm-only", action="store_true", help="Only the warm Python API.")
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


if __name__ == "__main__":
    main()
