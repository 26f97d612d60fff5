"""Feed every CLI command and every HTTP operation hostile inputs; count what breaks.

    .venv/bin/python bench/fuzz.py [--per-command 24] [--per-operation 40] [--seed 0] [--json F]

Inputs come from tables of what users and attackers send (sizes and counts out of range,
non-finite numbers, wrong types, huge prompts, truncated or disguised image files, a
decompression bomb, malformed model folders), combined at random from a seeded generator. Every
case must end in exit code 0, 1 or 2 with at most one ``error:`` line and no traceback (the
CLI), or a status below 500 with a JSON body under 4 KB (the HTTP API); within ``--case-seconds``
each; touching no file outside its output folder. Valid combinations run for real, on a tiny
random model under a small budget (ATELIER_MAX_PIXELS and ATELIER_MAX_STEPS), so they are quick.
Prints a table per command and operation and exits 1 if any case crashed, hung or touched a
file; peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Small budgets: a valid case makes a 32 px image in a few steps.
os.environ.update({"ATELIER_MAX_PIXELS": str(64 * 64), "ATELIER_MAX_STEPS": "8",
                   "ATELIER_MAX_IMAGES": "16", "HF_HUB_OFFLINE": "1"})  # fmt: skip

import torch  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

HOSTILE = 0.25
BAD_INTS = ["0", "-1", "-7", "3", "99999999999999999999", "1e3", "abc", "", "nan", "2.5"]
BAD_FLOATS = ["nan", "inf", "-inf", "1e999", "-1", "0", "2", "abc", "", "1e-320"]
BAD_TEXT = ["", " ", "a red circle", "a red circle AND", "AND", "x" * 30_000,
            "a hexagon", "\x00\x01", "ünïcödé ✓", "a red circle :w", "' OR 1=1 --"]  # fmt: skip


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def hostile_files(folder: Path) -> dict[str, Path]:
    """Image-like files: fine ones, and every way one can be wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def png(name, image, **kwargs):
        image.save(folder / name, **kwargs)
        files[name] = folder / name

    png("ok.png", Image.new("RGB", (32, 32), (200, 30, 30)))
    png("mask.png", Image.new("L", (32, 32), 255))
    png("black-mask.png", Image.new("L", (32, 32), 0))
    png("one.png", Image.new("RGB", (1, 1)))
    png("wide.png", Image.new("RGB", (4000, 3)))
    png("big.png", Image.new("RGB", (300, 300)))
    png("bomb.png", Image.new("L", (20000, 20000)), optimize=True)
    png("rgba.png", Image.new("RGBA", (32, 32), (0, 0, 0, 0)))
    raw = (folder / "ok.png").read_bytes()
    for name, data in {
        "truncated.png": raw[: len(raw) // 2],
        "empty.png": b"",
        "text.png": b"this is not a picture\n",
        "x.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n",
        "pickle.png": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.",
    }.items():
        (folder / name).write_bytes(data)
        files[name] = folder / name
    files["missing.png"] = folder / "missing.png"
    files["a-folder.png"] = folder / "a-folder.png"
    files["a-folder.png"].mkdir(exist_ok=True)
    return files


def tampered_pngs(folder: Path, source: Path) -> dict[str, Path]:
    """Copies of a generated PNG whose parameter chunk lies."""
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(source)
    record = json.loads(image.text["atelier"])
    options = record["options"]
    changes = {
        "huge-size": {"width": 100_000, "height": 100_000},
        "steps-1e9": {"options": {**options, "steps": 10**9}},
        "steps-text": {"options": {**options, "steps": "40"}},
        "guidance-abc": {"options": {**options, "guidance": "abc"}},
        "guidance-nan": {"options": {**options, "guidance": float("nan")}},
        "seed-2-80": {"seed": 2**80},
        "seed-negative": {"seed": -5},
        "no-prompt": {"prompt": None},
        "model-path": {"model": "../../../../etc/passwd"},
        "options-list": {"options": [1, 2]},
        "cascade-text": {"extra": {"cascade": "32,64"}},
        "mode-img2img": {"mode": "img2img"},
    }
    out = {}
    for name, change in changes.items():
        data = {k: v for k, v in {**record, **change}.items() if v is not None}
        info = PngImagePlugin.PngInfo()
        info.add_text("atelier", json.dumps(data))
        image.save(folder / f"{name}.png", pnginfo=info)
        out[name] = folder / f"{name}.png"
    out["sane"] = source
    (folder / "not-json.png").write_bytes(b"")
    info = PngImagePlugin.PngInfo()
    info.add_text("atelier", "{not json")
    image.save(folder / "not-json.png", pnginfo=info)
    out["not-json"] = folder / "not-json.png"
    return out


def hostile_models(folder: Path, good: Path) -> dict[str, Path]:
    """Model folders: a tiny good one, and every way a shared one can be wrong."""
    import shutil

    out = {"good": good}
    shutil.copytree(good, folder / "good-copy")
    out["good-copy"] = folder / "good-copy"

    def variant(name, edit=None, files=None):
        target = folder / name
        shutil.copytree(good, target)
        if edit is not None:
            config = json.loads((target / "config.json").read_text())
            edit(config)
            (target / "config.json").write_text(json.dumps(config))
        for file, data in (files or {}).items():
            (target / file).write_bytes(data)
        out[name] = target

    weights = (good / "unet.safetensors").read_bytes()
    variant("no-config")
    (folder / "no-config" / "config.json").unlink()
    variant("config-not-json", files={"config.json": b"{oops"})
    variant("config-huge", files={"config.json": b" " * (2 << 20)})
    variant("config-list", files={"config.json": b"[1, 2, 3]"})
    variant("kind-unknown", lambda c: c.update(kind="gan"))
    variant("kind-missing", lambda c: c.pop("kind"))
    variant("deep", lambda c: c["unet"].update(layers_per_block=1_000_000))
    variant("wide", lambda c: c["unet"].update(block_channels=[2048, 2048]))
    variant("nan-scale", lambda c: c.update(latent_scale=float("nan")))
    variant("resolution-huge", lambda c: c.update(resolution=100_000))
    variant("unknown-field", lambda c: c["unet"].update(warp_drive=True))
    variant("weights-truncated", files={"unet.safetensors": weights[: len(weights) // 3]})
    variant("weights-pickle", files={"unet.safetensors": b"\x80\x04\x95\x00\x00\x00\x00."})
    variant("weights-missing")
    (folder / "weights-missing" / "unet.safetensors").unlink()
    out["nope"] = Path("no-such-model")
    out["traversal"] = Path("../../../../etc")
    return out


def tiny_model_folder(folder: Path) -> Path:
    from atelier.kinds.diffusion import save_model
    from tests.pipelines.conftest import tiny_model

    save_model(tiny_model(), folder, card="# tiny\n")
    return folder


def cli_cases(rng: random.Random, per: int, files, models, pngs, work: Path):
    """``per`` (command, argument list) pairs per command, each with hostile parts."""

    # Each slot is hostile one time in four and sane otherwise, so cases reach every layer: some
    # are refused by the option parser, some by the budget, some by the model, some run.
    def pick(sane, pool):
        return sane if rng.random() > HOSTILE else rng.choice(pool)

    ok_image, ok_model = str(files["ok.png"]), str(models["good"])
    img = lambda sane=ok_image: pick(sane, [str(p) for p in files.values()])  # noqa: E731
    model = lambda: pick(ok_model, [str(p) for p in models.values()])  # noqa: E731
    intv = lambda sane="2": pick(sane, BAD_INTS)  # noqa: E731
    flt = lambda sane="0.5": pick(sane, BAD_FLOATS)  # noqa: E731
    text = lambda: pick("a red circle", BAD_TEXT)  # noqa: E731
    out = lambda: pick(str(work / "out"), [str(work / "ok.txt" / "sub"), str(work / "ro")])  # noqa: E731
    sane_png = str(pngs["sane"])
    made = list(pngs.values())
    makers = {
        "generate": lambda: ["generate", text(), "--model", model(), "--steps", intv("2"),
                             "--size", intv("32"), "-n", intv("1"), "--seed", intv("0"),
                             "--guidance", flt("2"), "--option",
                             pick("karras=true", ["steps=abc", "temperature=1", "x", "=",
                                                  "karras=maybe", "spacing=nope"]),
                             "-o", out()],
        "replay": lambda: ["replay", pick(sane_png, [str(p) for p in made + list(files.values())])],
        "img2img": lambda: ["img2img", img(), text(), "--strength", flt("0.5"), "--model",
                            model(), "--steps", intv("2"), "-o", out()],
        "inpaint": lambda: ["inpaint", img(), img(str(files["mask.png"])), text(), "--grow",
                            intv("0"), "--feather", flt("0"), "--method",
                            pick("masked", ["trained", "x"]), "--model", model(), "--steps", "2",
                            "-o", out()],
        "outpaint": lambda: ["outpaint", img(), text(), "--right", intv("8"), "--model",
                             model(), "--steps", "2", "-o", out()],
        "variations": lambda: ["variations", img(), "-n", intv("1"), "--strength", flt("0.5"),
                               "--model", model(), "--steps", "2", "-o", out()],
        "upscale": lambda: ["upscale", img(), "--model", pick("shapes-sr-32-64",
                            [str(p) for p in models.values()]), "--steps", intv("2"), "-o",
                            out()],
        # Always one hostile part: a valid recipe would train for an hour.
        "train": lambda: ["train", rng.choice(["shapes-vae", "shapes-ldm", "nope", ""]),
                          rng.choice(["train.max_steps=abc", "train.max_steps=-1",
                                      "train.batch_size=0", "nope=1", "data.n=nan",
                                      "train.lr=inf", "unet.layers_per_block=999999"]),
                          "--out", out()],
        "eval": lambda: ["eval", model(), "--samples", intv("1"), "--limit", "1", "--steps",
                         intv("2"), "--no-metrics", "-o", out()],
        "eval-diff": lambda: ["eval-diff", img(), img()],
        "sweep": lambda: ["sweep", model(), "--x", pick("steps=1,2", ["guidance=nan",
                          "steps=0,abc", "warp=1", "steps=", "guidance=1e999"]), "--every",
                          intv("300"), "-o", out()],
        "compare": lambda: ["compare", model(), str(models["good-copy"]), "--set",
                            pick(f"{ok_model}:steps=1", ["x:steps=1", f"{ok_model}:steps=abc",
                                 f"{ok_model}:temperature=2"]), "--every", intv("300"),
                            "--real", intv("4"), "-o", out()],
        "explain": lambda: ["explain", text(), "--model", model(), "--steps", intv("2"),
                            "-o", out()],
        "inspect": lambda: ["inspect", model(), "--depth", intv("1")],
        "export": lambda: ["export", model(), "-o", pick(str(work / "out" / f"m{rng.random()}"),
                           [str(work / "ok.txt" / "sub"), str(work / "ro" / "m")]),
                           "--steps", intv("3"), "--guidance", flt("2")],
        "serve": lambda: ["serve", "--model", model(), "--port", intv("7861"), "--max-queue",
                          intv("2"), "--timeout", flt("5")],
        "shapes render": lambda: ["shapes", "render", text(), "--size", intv("32"), "-o",
                                  str(work / "out" / f"r{rng.random()}.png")],
        "shapes judge": lambda: ["shapes", "judge", img(), "--prompt", text()],
        "shapes dataset": lambda: ["shapes", "dataset", "--n", intv("2"), "--size", intv("32"),
                                   "--split", pick("train", ["x", ""]), "-o",
                                   str(work / "out" / f"d{rng.random()}")],
        "clip classify": lambda: ["clip", "classify", img(), "--labels",
                                  pick("a red circle,a blue square", BAD_TEXT), "--model",
                                  pick("shapes-clip", [str(p) for p in models.values()])],
        "clip score": lambda: ["clip", "score", img(), "--prompt", text(), "--model",
                               pick("shapes-clip", [str(p) for p in models.values()])],
        "root limits": lambda: [rng.choice(["--max-pixels", "--max-steps", "--max-images"]),
                                intv("100000"), "generate", "x", "--model", ok_model,
                                "--steps", "2", "-o", out()],
        # Last, so that the cases above draw what they drew before it was added.
        "interpolate": lambda: ["interpolate", "--image", img(), "--to-image", img(), "--model",
                                pick("tiny-unclip", [str(p) for p in models.values()]),
                                "--frames", intv("3"), "--steps", intv("2"), "-o", out()],
    }  # fmt: skip
    return [(name, [str(a) for a in maker()]) for name, maker in makers.items()
            for _ in range(per)]  # fmt: skip


def snapshot(*roots: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    seen = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not any(s in path.parents for s in skip):
                st = path.stat()
                seen[str(path)] = (st.st_size, st.st_mtime_ns)
    return seen


def run_cli(cases, work: Path, case_seconds: float) -> dict[str, dict]:
    from atelier.cli import app

    runner = CliRunner()
    report: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    shipped = ROOT / "atelier" / "weights"
    outputs = (work / "out", work / "ro")
    for name, args in cases:
        before = snapshot(work, shipped, skip=outputs)
        began = time.monotonic()
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, case_seconds)
        result = None
        try:
            result = runner.invoke(app, args, catch_exceptions=True)
            outcome = classify(result)
        except Hang:
            outcome = "hang"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.monotonic() - began
        if snapshot(work, shipped, skip=outputs) != before:
            outcome = "touched"
        row = report[name]
        row["cases"] += 1
        row[outcome] += 1
        if outcome == "ok":
            row["refused" if result.exit_code == 2 else "ran"] += 1
        row["max_s"] = max(row.get("max_s", 0.0), seconds)
        if outcome not in ("ok",):
            row.setdefault("examples", []).append(
                {"args": [a[:80] for a in args], "outcome": outcome,
                 "output": result.output[-600:] if result is not None else "",
                 "exception": repr(result.exception)[:300] if result is not None else ""}
            )  # fmt: skip
    return report


def classify(result) -> str:
    """ok: an exit code 0-2, at most one error line, no traceback; else crash."""
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        if isinstance(result.exception, Hang):
            raise result.exception
        return "crash"
    if result.exit_code not in (0, 1, 2) or "Traceback" in output:
        return "crash"
    if sum(line.startswith("error:") for line in output.splitlines()) > 1:
        return "crash"
    return "ok"


def http_cases(rng: random.Random, per: int, files) -> list[tuple[str, str, object]]:
    def b64(name):
        path = files[name]
        return base64.b64encode(path.read_bytes()).decode() if path.is_file() else "%%%"

    def value():
        return rng.choice([float("nan"), float("inf"), 1e308, -1, 0, 10**30, "abc", "", None,
                           True, [], {}, "x" * 100_000, 3, 0.5])  # fmt: skip

    image_names = [n for n, p in files.items() if p.is_file()]
    fields = ["prompt", "negative_prompt", "seed", "steps", "guidance", "guidance_rescale",
              "sampler", "model", "n", "size", "strength", "options", "method", "grow",
              "feather", "left", "right", "top", "bottom", "image", "mask"]  # fmt: skip
    sane = {"prompt": "a red circle", "seed": 1, "steps": 2}
    bases = {
        "/v1/txt2img": {**sane, "n": 1},
        "/v1/img2img": {**sane, "image": b64("ok.png"), "strength": 0.5},
        "/v1/inpaint": {**sane, "image": b64("ok.png"), "mask": b64("mask.png")},
        "/v1/outpaint": {**sane, "image": b64("ok.png"), "right": 8},
        "/v1/upscale": {"image": b64("ok.png"), "seed": 1},
        "/v1/variations": {**sane, "image": b64("ok.png"), "model": "tiny-unclip", "n": 1},
    }
    out = []
    for path, base in bases.items():
        for _ in range(per):
            # From a valid request, each of a few fields made hostile one time in four.
            body = dict(base)
            for field in rng.sample(fields, k=rng.randint(1, 3)):
                if rng.random() < HOSTILE:
                    if field in ("image", "mask"):
                        body[field] = b64(rng.choice(image_names))
                    elif field == "options":
                        body[field] = {rng.choice(["steps", "temperature", "karras", ""]): value()}
                    else:
                        body[field] = value()
            out.append(("POST", path, body))
        out.append(("POST", path, "{not json"))
        out.append(("POST", path, json.dumps({"prompt": "x" * (5 << 20)})))
    for job in ("0" * 16, "../../etc/passwd", "x" * 5000):
        out += [("GET", f"/v1/jobs/{job}", None), ("DELETE", f"/v1/jobs/{job}", None),
                ("GET", f"/v1/images/{job}", None)]  # fmt: skip
    out += [("GET", "/v1/models", None), ("GET", "/v1/samplers", None)]
    return out


def route(path: str) -> str:
    """The operation a path belongs to: ``/v1/jobs/abc`` -> ``/v1/jobs/{id}``."""
    for prefix in ("/v1/jobs/", "/v1/images/"):
        if path.startswith(prefix):
            return prefix + "{id}"
    return path


def run_http(cases, work: Path, model: Path, case_seconds: float) -> dict[str, dict]:
    """Every request answered below 500 with a short body; every accepted job then finishes
    (a job that fails is a bad input the server should have refused up front)."""
    from fastapi.testclient import TestClient

    from atelier.serve.app import create_app
    from atelier.serve.runners import ServeSettings
    from atelier.serve.schemas import Limits

    # A queue long enough that no case is turned away with 429 before it is judged.
    settings = ServeSettings(model=str(model), output=work / "served", limits=Limits(max_queue=999))
    app = create_app(settings)
    report: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    accepted: list[tuple[str, str]] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path, body in cases:
            name = f"{method} {route(path)}"
            content = body if isinstance(body, str) else json.dumps(body, allow_nan=True)
            response = client.request(method, path, content=None if body is None else content,
                                      headers={"Content-Type": "application/json"})  # fmt: skip
            ok = response.status_code < 500 and (len(response.content) < 4096 or method == "GET")
            row = report[name]
            row["cases"] += 1
            row["ok" if ok else "crash"] += 1
            row["refused" if 400 <= response.status_code < 500 else "ran"] += 1
            if response.status_code == 202:
                accepted.append((name, response.json()["id"]))
            if not ok:
                row.setdefault("examples", []).append(
                    {"body": str(body)[:200], "status": response.status_code,
                     "reply": response.text[:300]})  # fmt: skip
        end = time.monotonic() + case_seconds * max(1, len(accepted)) / 4
        for name, job in accepted:
            while (view := client.get(f"/v1/jobs/{job}").json())["status"] in ("queued", "running"):
                if time.monotonic() > end:
                    break
                time.sleep(0.05)
            if view["status"] != "done":
                row = report[name]
                row["ok"] -= 1
                row["hang" if view["status"] in ("queued", "running") else "crash"] += 1
                row.setdefault("examples", []).append({"job": view})
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-command", type=int, default=24)
    parser.add_argument("--per-operation", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="atelier-fuzz-") as tmp:
        tmp = Path(tmp)
        work = tmp / "work"
        work.mkdir()
        os.environ["ATELIER_HOME"] = str(tmp / "home")
        (work / "ok.txt").write_text("a file, not a folder\n")
        (work / "ro").mkdir()
        (work / "ro").chmod(0o500)
        files = hostile_files(work / "files")
        # Installed by name too, so that replay finds a PNG's model by its name and hash.
        good = tiny_model_folder(tmp / "home" / "models" / "tiny")
        from tests.pipelines.unclip_models import install_unclip

        install_unclip(tmp / "home" / "models")  # tiny-unclip: variations, image interpolation
        (work / "models").mkdir()
        models = hostile_models(work / "models", good)
        from atelier.cli import app

        made = CliRunner().invoke(app, ["generate", "a red circle", "--model", str(good),
                                        "--steps", "2", "-o", str(work / "made")])  # fmt: skip
        assert made.exit_code == 0, made.output
        pngs = tampered_pngs(work / "pngs", next((work / "made").glob("*.png")))
        import uvicorn

        uvicorn.run = lambda *a, **k: None  # a valid `serve` case must not block the run
        cwd = os.getcwd()
        os.chdir(work)
        try:
            cli = run_cli(cli_cases(rng, args.per_command, files, models, pngs, work), work,
                          args.case_seconds)  # fmt: skip
            http = run_http(
                http_cases(rng, args.per_operation, files), work, good, args.case_seconds
            )
        finally:
            os.chdir(cwd)
            (work / "ro").chmod(0o700)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'surface':<26} {'cases':>6} {'ran':>5} {'refused':>8} {'crash':>6} {'hang':>5} "
          f"{'touched':>8} {'max s':>7}")  # fmt: skip
    for name, row in [*sorted(cli.items()), *sorted(http.items())]:
        print(f"{name:<26} {row['cases']:>6} {row['ran']:>5} {row['refused']:>8} "
              f"{row['crash']:>6} {row['hang']:>5} {row['touched']:>8} "
              f"{row.get('max_s', 0):>7.2f}")  # fmt: skip
    total = {k: sum(r[k] for r in [*cli.values(), *http.values()])
             for k in ("cases", "ok", "crash", "hang", "touched")}  # fmt: skip
    print(
        f"\n{total['cases']} cases: {total['ok']} ok, {total['crash']} crashes, "
        f"{total['hang']} hangs, {total['touched']} touched files; peak memory {peak_mb:.0f} MB"
    )
    for name, row in [*cli.items(), *http.items()]:
        for example in row.get("examples", [])[:2]:
            print(f"  {name}: {json.dumps(example)[:700]}")
    if args.json:
        args.json.write_text(json.dumps({"cli": cli, "http": http, "total": total,
                                         "peak_mb": peak_mb}, indent=1, default=str))  # fmt: skip
    return 0 if total["ok"] == total["cases"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
