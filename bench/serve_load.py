"""Load test of ``atelier serve`` over loopback, with and without batching.

    .venv/bin/python bench/serve_load.py [--models shapes-ldm,OTHER] [--requests 32]
        [--steps 10] [--clients 1,4,16] [--batching off,on]

``--steps 0`` sends no step count, so each model samples at its own defaults (a distilled
model's 4 steps beside the default's 40). With several ``--models``, a last table puts each
model's 1-client p50 and 16-client throughput side by side, with ratios to the first.

For 1, 4 and 16 concurrent clients, each sending txt2img requests with its own prompt and seed
and waiting for the result: p50 and p95 latency (request to finished image), throughput, and a
check of every answer (the PNG's embedded prompt and seed are the request's: nothing lost,
nothing swapped). Then an overload burst against a queue of 4 must get 429s with Retry-After,
never a 5xx. Bounded: ``--requests`` per setting and a time limit per request.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from tempfile import TemporaryDirectory

import httpx
from PIL import Image

PROMPTS = ["a red circle", "a blue square", "a green triangle", "two yellow circles",
           "a cyan square above a purple circle", "a red triangle on the left"]  # fmt: skip


@contextmanager
def serving(model: str, out: str, *, batching: bool, max_queue: int):
    """``atelier serve`` in its own process, as a user runs it: the clients' HTTP handling never
    competes with generation for this process's GIL. Yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "atelier", "serve", "--port", str(port), "--model", model,
           "--max-queue", str(max_queue), "-o", out]  # fmt: skip
    cmd += [] if batching else ["--no-batching"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"atelier serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/v1/samplers", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("atelier serve did not start within 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def body(prompt: str, seed: int, steps: int) -> dict:
    """A txt2img request; ``steps`` 0 leaves the model's own."""
    return {"prompt": prompt, "seed": seed, **({"steps": steps} if steps else {})}


def one_request(base: str, k: int, steps: int, timeout: float) -> tuple[float, bool, str]:
    """(latency s, answer verified, problem) for request ``k``."""
    prompt, seed = PROMPTS[k % len(PROMPTS)], 1000 + k
    began = time.perf_counter()
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post("/v1/txt2img", json=body(prompt, seed, steps))
        while r.status_code == 429:
            time.sleep(float(r.headers.get("retry-after", "1")))
            r = client.post("/v1/txt2img", json=body(prompt, seed, steps))
        if r.status_code != 202:
            return time.perf_counter() - began, False, f"POST {r.status_code}"
        job = r.json()["id"]
        while True:
            view = client.get(f"/v1/jobs/{job}").json()
            if view["status"] in ("done", "failed", "cancelled"):
                break
            if time.perf_counter() - began > timeout:
                return time.perf_counter() - began, False, "timeout"
            time.sleep(0.05)
        latency = time.perf_counter() - began
        if view["status"] != "done":
            return latency, False, view.get("error") or view["status"]
        png = client.get(view["images"][0]["url"]).content
    meta = json.loads(Image.open(io.BytesIO(png)).text["atelier"])
    ok = meta["prompt"] == prompt and meta["seed"] == seed
    return latency, ok, "" if ok else "answered with another request's image"


def run_setting(model: str, batching: bool, clients: int, requests: int, steps: int,
                timeout: float) -> dict:  # fmt: skip
    with TemporaryDirectory() as out, serving(model, out, batching=batching, max_queue=64) as base:
        # One warm-up request (model load, first-call allocations) outside the measurement.
        one_request(base, requests, steps, timeout)
        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(
                pool.map(lambda k: one_request(base, k, steps, timeout), range(requests))
            )
        wall = time.perf_counter() - began
    latencies = sorted(r[0] for r in results)
    problems = [r[2] for r in results if not r[1]]
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "throughput": len(results) / wall,
        "verified": sum(r[1] for r in results),
        "n": len(results),
        "problems": problems[:3],
    }


def overload(model: str, steps: int) -> dict:
    with TemporaryDirectory() as out, serving(model, out, batching=True, max_queue=4) as base:
        codes = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for k in range(20):
                r = client.post("/v1/txt2img", json=body("a red circle", k, steps))
                codes.append((r.status_code, r.headers.get("retry-after")))
    return {
        "accepted": sum(c == 202 for c, _ in codes),
        "rejected_429": sum(c == 429 for c, _ in codes),
        "retry_after_on_all_429": all(ra is not None for c, ra in codes if c == 429),
        "server_errors": sum(c >= 500 for c, _ in codes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", "--model", default="shapes-ldm")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="0: each model's own")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--batching", default="off,on")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    clients_list = [int(c) for c in args.clients.split(",")]
    batchings = [{"off": False, "on": True}[b] for b in args.batching.split(",")]
    steps = f"{args.steps} steps" if args.steps else "each model's own steps"
    rows = {}
    for model in models:
        print(f"# serve load: {model}, {args.requests} requests per row, {steps}")
        print("| batching | clients | p50 s | p95 s | req/s | verified |")
        print("|---|---|---|---|---|---|")
        for clients in clients_list:
            for batching in batchings:
                r = run_setting(model, batching, clients, args.requests, args.steps,
                                args.timeout)  # fmt: skip
                rows[(model, batching, clients)] = r
                flag, problems = "on" if batching else "off", " ".join(r["problems"])
                print(
                    f"| {flag} | {clients} | {r['p50']:.2f} | {r['p95']:.2f} "
                    f"| {r['throughput']:.2f} | {r['verified']}/{r['n']} {problems} |"
                )
        if len(batchings) == 2:
            for clients in clients_list[1:]:
                ratio = (rows[(model, True, clients)]["throughput"]
                         / rows[(model, False, clients)]["throughput"])  # fmt: skip
                print(f"throughput with batching / without at {clients} clients: {ratio:.2f}x")
        print("overload (queue of 4, 20 requests at once):", overload(model, args.steps))
    if len(models) > 1:
        few, many, on = min(clients_list), max(clients_list), batchings[-1]
        first = models[0]
        base_p50, base_tput = rows[(first, on, few)]["p50"], rows[(first, on, many)]["throughput"]
        print(
            f"\n| model | {few}-client p50 s | x {first} | {many}-client req/s "
            f"(batching {'on' if on else 'off'}) | x {first} |"
        )
        print("|---|---|---|---|---|")
        for model in models:
            p50, tput = rows[(model, on, few)]["p50"], rows[(model, on, many)]["throughput"]
            print(
                f"| {model} | {p50:.3f} | {base_p50 / p50:.2f}x faster | {tput:.2f} "
                f"| {tput / base_tput:.2f}x |"
            )


if __name__ == "__main__":
    main()
