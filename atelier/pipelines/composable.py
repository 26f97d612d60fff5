"""AUTOMATIC1111's ``AND`` prompt syntax for composable diffusion (Liu et al. 2022).

``"a red circle AND a blue square :0.8"`` is two sub-prompts, each encoded on its own and guiding
the image with its weight (``diffusion/guidance.py``, :class:`Composition`). ``AND`` is the
upper-case word; a lower-case "and" stays inside its prompt. A weight is written ``:w`` at the end
of a sub-prompt (default 1). A prompt without ``AND`` is one sub-prompt of weight 1, read as
written (a trailing ``:2`` there is text, not a weight).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from atelier.diffusion.guidance import Composition

_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"^(?P<text>.*?)\s*:\s*(?P<weight>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$", re.S)


def split_and(prompt: str) -> list[tuple[str, float]]:
    """The sub-prompts of ``prompt`` and their weights; raises ValueError on an empty one."""
    parts = _AND.split(prompt)
    if len(parts) == 1:
        return [(prompt, 1.0)]
    out = []
    for part in parts:
        found = _WEIGHT.match(part.strip())
        text, weight = (found["text"], float(found["weight"])) if found else (part.strip(), 1.0)
        if not text:
            raise ValueError(
                f"prompt {prompt!r} has an empty sub-prompt around AND; write text on both sides "
                "of every AND (or a lower-case 'and' to keep one prompt)"
            )
        out.append((text, weight))
    return out


def compose(prompts: Sequence[str]) -> tuple[list[str], Composition | None]:
    """The texts to encode for ``prompts`` and their :class:`Composition`, or the prompts as
    they are and None when no prompt uses ``AND`` (plain classifier-free guidance)."""
    split = [split_and(prompt) for prompt in prompts]
    if all(len(parts) == 1 for parts in split):
        return list(prompts), None
    texts = [text for parts in split for text, _ in parts]
    image = torch.tensor([i for i, parts in enumerate(split) for _ in parts])
    weight = torch.tensor([w for parts in split for _, w in parts], dtype=torch.float32)
    return texts, Composition(image, weight, images=len(prompts))
