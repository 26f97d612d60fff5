"""Noun phrases of a prompt, for encoding each object's words on their own.

StructureDiffusion (Feng et al. 2023) encodes a prompt's noun phrases separately, so that the
states of "red" in "a red circle" carry no other object's words: a frozen sentence encoder gives
every token the whole sentence's content, and cross-attention must then untangle which colour goes
with which shape. :func:`noun_phrases` is a rule-based chunker for short descriptive prompts: it
drops a picture prefix ("an image of") and splits at list punctuation, "and", "with" and the
spatial relations, so each object keeps its own count, size, colour, shape and place.
"""

from __future__ import annotations

import re

_PREFIX = re.compile(
    r"^\s*(?:(?:a|an)\s+(?:picture|image|drawing|photo|painting|render)\s+(?:of|with)"
    r"|there\s+(?:is|are))\s+",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"\s*(?:[,;]|\band\b|\bwith\b|\bnext\s+to\b|\bbeside\b|\bon\s+top\s+of\b"
    r"|\b(?:to\s+the\s+)?(?:left|right)\s+of\b|\babove\b|\bover\b|\bbelow\b|\bunder(?:neath)?\b)"
    r"\s*",
    re.IGNORECASE,
)


def noun_phrases(prompt: str) -> list[str]:
    """``"a red circle to the left of two blue squares"`` -> ``["a red circle", "two blue
    squares"]``; a prompt with no separator is its own single phrase, a blank one has none."""
    text = _PREFIX.sub("", prompt.strip())
    return [part.strip(" .") for part in _SEPARATOR.split(text) if part.strip(" .")]
