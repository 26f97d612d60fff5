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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from atelier.atomic import write_atomic

JSON_KEY = "atelier"
A1111_KEY = "parameters"
# Our sampler names and the names A1111 shows for the same algorithms.
A1111_SAMPLERS = {
    "ddpm": "DDPM", "ddim": "DDIM", "euler": "Euler", "euler_ancestral": "Euler a",
    "heun": "Heun", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_sde": "DPM++ 2M SDE", "unipc": "UniPC",
}  # fmt: skip


@dataclass(frozen=True)
class GenerationParams:
    """Everything needed to regenerate one image bit for bit."""

    prompt: str
    seed: int
    steps: int
    guidance: float
    sampler: str
    width: int
    height: int
    model: str
    model_hash: str
    negative_prompt: str = ""
    mode: str = "txt2img"
    extra: dict[str, Any] = field(default_factory=dict)  # sampler / schedule / mode options

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
    ) -> GenerationParams:
        """The parameters of ``image`` made with ``options`` (a ``SamplingOptions``): steps,
        guidance, sampler, spacing and Karras flag from them (and the guidance rescale if any),
        the size from the image."""
        settings = {"spacing": options.spacing, "karras": options.karras}
        if options.guidance_rescale:
            settings["guidance_rescale"] = options.guidance_rescale
        return cls(
            prompt=prompt, seed=seed, steps=options.steps, guidance=options.guidance,
            sampler=options.sampler, width=image.width, height=image.height, model=model,
            model_hash=model_hash, negative_prompt=negative_prompt, mode=mode,
            extra={**settings, **(extra or {})},
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GenerationParams:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generation parameters {sorted(unknown)}")
        return cls(**data)


def to_a1111(p: GenerationParams) -> str:
    """The ``parameters`` text A1111 writes for these settings."""
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    items = [
        ("Steps", p.steps), ("Sampler", A1111_SAMPLERS.get(p.sampler, p.sampler)),
        ("CFG scale", p.guidance), ("Seed", p.seed), ("Size", f"{p.width}x{p.height}"),
        ("Model hash", p.model_hash), ("Model", p.model),
    ]  # fmt: skip
    if p.mode != "txt2img":
        items.append(("Mode", p.mode))
    items += [(k.replace("_", " ").capitalize(), v) for k, v in sorted(p.extra.items())]
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


def save_png(image: Image.Image, path: str | Path, params: GenerationParams) -> Path:
    """Write ``image`` with both metadata chunks, atomically."""
    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_KEY, to_a1111(params))
    info.add_text(JSON_KEY, params.to_json())
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return write_atomic(path, buf.getvalue())


def read_params(path: str | Path) -> GenerationParams:
    """The exact parameters atelier stored in a PNG; a clear error if there are none."""
    try:
        with Image.open(path) as img:
            text = img.text.get(JSON_KEY) if hasattr(img, "text") else None
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path} as a PNG ({err})") from None
    if text is None:
        raise ValueError(
            f"{path} holds no atelier generation parameters; only images written by "
            "`atelier generate` (or its relatives) can be replayed"
        )
    return GenerationParams.from_json(text)
