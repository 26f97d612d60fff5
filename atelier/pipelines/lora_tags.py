"""AUTOMATIC1111's LoRA syntax in a prompt: ``<lora:NAME:WEIGHT>`` (WEIGHT optional, 1 if left
out) asks for the LoRA NAME at that multiplier; the tag is no text to draw and is taken out.

``"a red sks <lora:cross:0.8> in the top left"`` -> ``("a red sks in the top left",
(("cross", 0.8),))``. A name may hold letters, digits, ``_ . -``; a weight is a finite number.
"""

from __future__ import annotations

import math
import re

TAG = re.compile(r"<lora:([^:>]*)(?::([^>]*))?>")
# No path: a name is looked up among the installed LoRAs (or beside the command, on a CLI).
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
MAX_TAGS = 16

LoRASpec = tuple[str, float]


def parse_lora_spec(text: str) -> LoRASpec:
    """``"NAME"`` or ``"NAME:WEIGHT"`` (the ``--lora`` flag's value) -> (name, weight)."""
    name, sep, weight = text.rpartition(":") if ":" in text else (text, "", "")
    return _spec(name.strip(), weight.strip() if sep else None, text)


def _spec(name: str, weight: str | None, shown: str) -> LoRASpec:
    if not NAME.match(name):
        raise ValueError(
            f"LoRA {shown!r}: a name is 1 to 100 letters, digits, '_', '.' or '-', not "
            "starting with '.' or '-'"
        )
    if weight is None or weight == "":
        return name, 1.0
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > 10:
        raise ValueError(f"LoRA {shown!r}: the weight must be a number in [-10, 10], "
                         f"got {weight!r}")  # fmt: skip
    return name, value


def split_lora_tags(prompt: str) -> tuple[str, tuple[LoRASpec, ...]]:
    """The prompt without its ``<lora:...>`` tags (spaces closed up) and the tags' specs, in
    order; a malformed tag is a ValueError naming it."""
    specs = tuple(_spec(m.group(1).strip(), m.group(2), m.group(0)) for m in TAG.finditer(prompt))
    if not specs and "<lora:" not in prompt:
        return prompt, ()
    if len(specs) > MAX_TAGS:
        raise ValueError(f"the prompt asks for {len(specs)} LoRAs; at most {MAX_TAGS}")
    text = " ".join(TAG.sub(" ", prompt).split())
    if "<lora:" in text:
        raise ValueError(f"a <lora:NAME:WEIGHT> tag in {prompt!r} is not closed with '>'")
    return text, specs
