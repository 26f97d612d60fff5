"""shapes-bench: the versioned prompt suite that a program scores exactly (after GenEval).

Each record is ``{"id", "prompt", "category", "split", "spec"}``. The seven categories each have a
``seen`` part, built only from colour-shape pairs that training scenes use, and a ``held_out``
part, where the prompt names at least one held-out pair (purple triangle, cyan circle, yellow
square), so compositional generalisation is measured apart. Prompts are written in the canonical
phrasing (:func:`atelier.shapes.caption.phrase` with ``plain=True``) and regenerate bit for bit
from :func:`build_suite`; the committed JSONL is the reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from atelier.atomic import write_atomic
from atelier.shapes.caption import phrase
from atelier.shapes.suite_name import SUITE_NAME
from atelier.shapes.world import (
    ALL_PAIRS,
    CATEGORIES,
    CELLS,
    HELD_OUT,
    HELD_OUT_PAIRS,
    RELATIONS,
    SEEN_PAIRS,
    SIZES,
    Category,
    ObjectSpec,
    Relation,
    SceneSpec,
    Split,
)

SUITE_VERSION = "v1"
SUITE_FILE = f"{SUITE_NAME}-{SUITE_VERSION}.jsonl"
PER_PART = {"seen": 36, "held_out": 12}
_SEED = 20261122
_FRAMES = ("", "an image of ", "a picture of ", "a drawing of ")


@dataclass(frozen=True)
class BenchPrompt:
    """One suite entry."""

    id: str
    prompt: str
    category: Category
    split: Split
    spec: SceneSpec

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "prompt": self.prompt,
                "category": self.category,
                "split": self.split,
                "spec": self.spec.to_dict(),
            }
        )

    @classmethod
    def from_json(cls, line: str) -> BenchPrompt:
        d = json.loads(line)
        return cls(d["id"], d["prompt"], d["category"], d["split"], SceneSpec.from_dict(d["spec"]))


def _pair(rng: np.random.Generator, pool: tuple) -> tuple[str, str]:
    return pool[int(rng.integers(len(pool)))]


def _pairs_for(split: Split, rng: np.random.Generator, n: int, *, distinct: bool = True):
    """``n`` colour-shape pairs: all seen, or (held_out) the first is held out and the rest any."""
    while True:
        first = _pair(rng, SEEN_PAIRS if split == "seen" else HELD_OUT_PAIRS)
        rest = [_pair(rng, SEEN_PAIRS if split == "seen" else ALL_PAIRS) for _ in range(n - 1)]
        pairs = [first, *rest]
        if not distinct or len(set(pairs)) == n:
            order = rng.permutation(n)
            return [pairs[int(i)] for i in order]


def _single_object(split, rng):
    ((c, s),) = _pairs_for(split, rng, 1)
    return SceneSpec((ObjectSpec(c, s),))


def _position(split, rng):
    ((c, s),) = _pairs_for(split, rng, 1)
    return SceneSpec((ObjectSpec(c, s, cell=CELLS[int(rng.integers(9))]),))


def _size(split, rng):
    if rng.random() < 0.5:
        ((c, s),) = _pairs_for(split, rng, 1)
        return SceneSpec((ObjectSpec(c, s, size=SIZES[int(rng.integers(2))]),))
    (c1, s1), (c2, s2) = _pairs_for(split, rng, 2)
    small_first = bool(rng.integers(2))
    return SceneSpec(
        (
            ObjectSpec(c1, s1, "small" if small_first else "large"),
            ObjectSpec(c2, s2, "large" if small_first else "small"),
        )
    )


def _two_objects(split, rng):
    (c1, s1), (c2, s2) = _pairs_for(split, rng, 2)
    return SceneSpec((ObjectSpec(c1, s1), ObjectSpec(c2, s2)))


def _relation(split, rng):
    (c1, s1), (c2, s2) = _pairs_for(split, rng, 2)
    name = RELATIONS[int(rng.integers(len(RELATIONS)))]
    return SceneSpec((ObjectSpec(c1, s1), ObjectSpec(c2, s2)), (Relation(0, name, 1),))


def _counting(split, rng):
    if rng.random() < 0.75:
        ((c, s),) = _pairs_for(split, rng, 1)
        return SceneSpec((ObjectSpec(c, s),) * int(rng.integers(2, 5)))
    (c1, s1), (c2, s2) = _pairs_for(split, rng, 2)
    return SceneSpec((ObjectSpec(c1, s1),) * int(rng.integers(2, 4)) + (ObjectSpec(c2, s2),))


def _color_attribution(split, rng):
    # Different colours and shapes, so swapping the bindings gives a different, wrong picture.
    while True:
        (c1, s1), (c2, s2) = _pairs_for(split, rng, 2)
        if c1 != c2 and s1 != s2:
            return SceneSpec((ObjectSpec(c1, s1), ObjectSpec(c2, s2)))


_MAKERS: dict[Category, Callable[[Split, np.random.Generator], SceneSpec]] = {
    "single_object": _single_object,
    "position": _position,
    "size": _size,
    "two_objects": _two_objects,
    "relation": _relation,
    "counting": _counting,
    "color_attribution": _color_attribution,
}


def build_suite(seed: int = _SEED) -> list[BenchPrompt]:
    """Regenerate the suite: per category, PER_PART[split] distinct prompts for each split."""
    rng = np.random.default_rng(seed)
    out: list[BenchPrompt] = []
    for split, n in PER_PART.items():
        pairs = len(SEEN_PAIRS if split == "seen" else HELD_OUT)
        if n > pairs * len(_FRAMES):
            raise ValueError(f"single_object cannot give {n} distinct {split} prompts")
    used: set[str] = set()  # a prompt appears once in the whole suite
    for category in CATEGORIES:
        for split, n in PER_PART.items():
            seen_prompts: set[str] = set()
            while len(seen_prompts) < n:
                spec = _MAKERS[category](split, rng)
                assert spec.held_out == (split == "held_out")
                prompt = phrase(spec, rng, plain=True)
                if category == "single_object":  # 18 pairs alone are too few distinct prompts
                    prompt = f"{_FRAMES[len(seen_prompts) % len(_FRAMES)]}{prompt}"
                if prompt in used:
                    continue
                used.add(prompt)
                seen_prompts.add(prompt)
                out.append(
                    BenchPrompt(f"{SUITE_VERSION}-{len(out):04d}", prompt, category, split, spec)
                )
    return out


def suite_path() -> Path:
    """Where the committed suite file lives inside the package."""
    return Path(str(resources.files("atelier.shapes") / SUITE_FILE))


def load_suite(path: str | Path | None = None) -> list[BenchPrompt]:
    """The committed suite (or a JSONL file in the same format)."""
    p = Path(path) if path is not None else suite_path()
    if not p.is_file():
        raise FileNotFoundError(
            f"suite file {p} not found; write it with `atelier shapes bench -o {p}`"
        )
    return [BenchPrompt.from_json(line) for line in p.read_text().splitlines() if line.strip()]


def write_suite(path: str | Path, prompts: list[BenchPrompt]) -> None:
    """Write the suite as JSONL, atomically."""
    write_atomic(path, "".join(bp.to_json() + "\n" for bp in prompts))


def first_per_category(suite: list[BenchPrompt], split: str) -> list[BenchPrompt]:
    """The first prompt of ``split`` in each category, in the suite's category order (what
    ``make demo`` and a model's example grid draw)."""
    categories = dict.fromkeys(bp.category for bp in suite)
    return [next(bp for bp in suite if bp.category == c and bp.split == split) for c in categories]
