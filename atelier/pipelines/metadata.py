"""Generation parameters embedded in PNGs, in AUTOMATIC1111's format plus an exact JSON record.

A1111 writes one ``tEXt`` chunk named ``parameters``::

    a red circle above a blue square
    Negative prompt: green
    Steps: 20, Sampler: DPM++ 2M, CFG scale: 3.0, Seed: 7, Size: 64x64, Model hash: 1a2b3c, Model: m

Tools that read A1111 images (galleries, ComfyUI importers, civitai) understand it. Because it is
lossy (no schedule options, rounded numbers), atelier also writes an ``atelier`` chunk holding the
full :class:`GenerationParams` as JSON, which is what ``atelier replay`` uses.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from atelier.atomic import write_atomic, write_new
from atelier.text.window import shorten

JSON_KEY = "atelier"
A1111_KEY = "parameters"
# An image drawn by compiled networks (``Model.compile``) says so in ``extra``; inductor's
# kernels round otherwise than eager ones, so replay in the other runtime accepts a difference
# of up to COMPILED_TOLERANCE levels in such an fp32 image, and none in another. In bf16 the
# two runtimes' images differ by up to COMPILED_BF16_SPREAD levels, too far to tell a true
# mismatch: only replay in the image's runtime judges it (measured: docs/latency.md).
RUNTIME = "runtime"
COMPILED_TOLERANCE = 2
COMPILED_BF16_SPREAD = 25
# Our sampler names and the names A1111 shows for the same algorithms.
A1111_SAMPLERS = {
    "ddpm": "DDPM", "ddim": "DDIM", "euler": "Euler", "euler_ancestral": "Euler a",
    "heun": "Heun", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE", "unipc": "UniPC",
}  # fmt: skip


@dataclass(frozen=True)
class GenerationParams:
    """Everything needed to regenerate one image bit for bit. The model is named by its name and
    hash, never by a path (people share these files); ``options`` are the model kind's own
    sampling options (steps and sampler for diffusion, temperature for a token model)."""

    prompt: str
    seed: int
    width: int
    height: int
    model: str
    model_hash: str
    negative_prompt: str = ""
    mode: str = "txt2img"
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # mode settings: strength, cascade ...

    @classmethod
    def of(
        cls,
        image: Image.Image,
        *,
        prompt: str,
        seed: int,
        options: Any,
        model: str,
        model_hash: str,
        negative_prompt: str = "",
        mode: str = "txt2img",
        extra: dict[str, Any] | None = None,
        runtime: str = "eager",
    ) -> GenerationParams:
        """The parameters of ``image`` made with ``options`` (the kind's options dataclass), the
        size from the image; ``runtime`` ``"compiled"`` (a model's ``runtime``) is recorded in
        ``extra``, eager is not."""
        extra = dict(extra or {}) | ({RUNTIME: runtime} if runtime != "eager" else {})
        return cls(
            prompt=prompt, seed=seed, width=image.width, height=image.height, model=model,
            model_hash=model_hash, negative_prompt=negative_prompt, mode=mode,
            options=asdict(options), extra=extra,
        )  # fmt: skip

    @property
    def compiled(self) -> bool:
        """Whether the image was drawn by compiled networks (its pixels then are eager's within
        :data:`COMPILED_TOLERANCE` levels)."""
        return self.extra.get(RUNTIME) == "compiled"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenerationParams:
        """Parameters from the JSON chunk; a ValueError naming what is wrong with it."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("the atelier parameters chunk is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the atelier parameters chunk is not a JSON object")
        data = _upgraded(data)
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown generation parameters {sorted(unknown)}")
        missing = sorted(n for n, f in known.items() if n not in data and f.default is MISSING
                         and f.default_factory is MISSING)  # fmt: skip
        if missing:
            raise ValueError(f"generation parameters lack {', '.join(missing)}")
        for name, kind in _TYPES.items():
            value = data.get(name)
            if name in data and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ValueError(f"generation parameter {name} is {shorten(repr(value))}, "
                                 f"not {_TYPE_NAMES[kind]}")  # fmt: skip
        return cls(**data)


_TYPE_NAMES = {str: "text", int: "an integer", dict: "a JSON object"}
_TYPES = {"prompt": str, "seed": int, "width": int, "height": int, "model": str,
          "model_hash": str, "negative_prompt": str, "mode": str, "options": dict,
          "extra": dict}  # fmt: skip
# Diffusion options that atelier before model kinds wrote at the top level or in ``extra``.
_LEGACY_OPTIONS = ("steps", "guidance", "sampler")
_LEGACY_EXTRA = ("spacing", "karras", "guidance_rescale")


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A record written before model kinds: diffusion options moved into ``options``, and the
    local model path it carried dropped."""
    if not any(k in data for k in _LEGACY_OPTIONS):
        return data
    data = dict(data)
    extra = dict(data.get("extra") or {})
    options = {k: data.pop(k) for k in _LEGACY_OPTIONS if k in data}
    options |= {k: extra.pop(k) for k in _LEGACY_EXTRA if k in extra}
    extra.pop("model_path", None)
    return {**data, "options": options, "extra": extra}


def to_a1111(p: GenerationParams) -> str:
    """The ``parameters`` text A1111 writes for these settings."""
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    o = dict(p.options)
    items = []
    if "steps" in o:
        items.append(("Steps", o.pop("steps")))
    if "sampler" in o:
        sampler = o.pop("sampler")
        items.append(("Sampler", A1111_SAMPLERS.get(sampler, sampler)))
    if "guidance" in o:
        items.append(("CFG scale", o.pop("guidance")))
    items += [("Seed", p.seed), ("Size", f"{p.width}x{p.height}"), ("Model hash", p.model_hash),
              ("Model", p.model)]  # fmt: skip
    if p.mode != "txt2img":
        items.append(("Mode", p.mode))
    if not o.get("guidance_rescale", 1):
        o.pop("guidance_rescale")  # plain CFG: A1111 writes nothing for it either
    if o.get("precision") == "fp32":
        o.pop("precision")  # what every A1111 image is drawn in
    settings = {**o, **p.extra}
    items += [(k.replace("_", " ").capitalize(), v) for k, v in sorted(settings.items())]
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in items))
    return "\n".join(lines)


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if ("," in text or ":" in text or "\n" in text) else text


def parse_a1111(text: str) -> dict[str, str]:
    """Read A1111 ``parameters`` text into a dict: ``prompt``, ``negative_prompt`` and settings."""
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and re.match(r"^\w[\w ]*: ", lines[-1]) else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines, negative = [], []
    for i, line in enumerate(body):
        if line.startswith("Negative prompt:"):
            negative = [line[len("Negative prompt:") :].strip(), *body[i + 1 :]]
            break
        prompt_lines.append(line)
    out = {"prompt": "\n".join(prompt_lines), "negative_prompt": "\n".join(negative)}
    for key, value in re.findall(r'\s*([\w ]+):\s*("(?:\\.|[^"])*"|[^,]*)(?:,|$)', settings_line):
        out[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
    return out


def save_png(
    image: Image.Image, path: str | Path, params: GenerationParams, *, replace: bool = False
) -> Path:
    """Write ``image`` with both metadata chunks, atomically. A file already at ``path`` stays
    as it is (FileExistsError) unless ``replace``: nobody's image is overwritten by accident."""
    data = _png_bytes(image, params)
    return write_atomic(path, data) if replace else write_new(path, data)


# A numbered output's name: ``00007-3.png``, ``00012-img2img-5.png``.
_NUMBERED = re.compile(r"^(\d+)-.*\.png$")


def next_number(folder: Path) -> int:
    """One above the highest number leading a PNG name in ``folder``; 0 when there is none."""
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=-1) + 1


def save_numbered_png(
    image: Image.Image, folder: Path, suffix: str, params: GenerationParams
) -> Path:
    """Write ``image`` as ``folder/NNNNN-suffix.png``, NNNNN above every numbered PNG there (a
    deleted image's number is not reused), never replacing a file: when another process takes
    the name first, the next number is tried."""
    data = _png_bytes(image, params)
    number = next_number(folder)
    while True:
        try:
            return write_new(folder / f"{number:05d}-{suffix}.png", data)
        except FileExistsError:
            number += 1


def _png_bytes(image: Image.Image, params: GenerationParams) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_KEY, to_a1111(params))
    info.add_text(JSON_KEY, params.to_json())
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_params(path: str | Path) -> GenerationParams:
    """The exact parameters atelier stored in a PNG; a clear error if there are none."""
    try:
        with Image.open(path, formats=["PNG"]) as img:
            text = img.text.get(JSON_KEY) if hasattr(img, "text") else None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read {path} as a PNG ({err})") from None
    if text is None:
        raise ValueError(
            f"{path} holds no atelier generation parameters; only images written by "
            "`atelier generate` (or its relatives) can be replayed"
        )
    try:
        return GenerationParams.from_json(text)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
