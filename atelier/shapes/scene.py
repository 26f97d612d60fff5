"""Scene sampling: random training scenes, and concrete scenes that realise a :class:`SceneSpec`.

Geometry follows the world spec: each object is centred on its cell centre plus a jitter of at
most 0.05 S per axis, its bounding-box side is drawn from its size range, and any two objects keep
at least 0.03 S of white between their bounding boxes. Objects also stay inside the canvas.
Placement is rejection sampling over sides and jitters, which accepts within a few tries.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from atelier.shapes.world import (
    ALL_PAIRS,
    CELL_CENTERS,
    CELLS,
    MAX_JITTER,
    MIN_GAP,
    SEEN_PAIRS,
    SIZE_RANGES,
    SIZES,
    Cell,
    PlacedObject,
    Scene,
    SceneSpec,
    Size,
    relation_holds,
)

SceneSplit = Literal["train", "any"]
_MAX_TRIES = 500


def _separated(a: PlacedObject, b: PlacedObject) -> bool:
    """Bounding boxes at least MIN_GAP apart along some axis (so the shapes never touch)."""
    reach = (a.side + b.side) / 2 + MIN_GAP
    return abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach


def _inside(o: PlacedObject) -> bool:
    half = o.side / 2
    return min(o.cx, o.cy) - half >= 0.0 and max(o.cx, o.cy) + half <= 1.0


def place(
    items: list[tuple[str, str, Size, Cell]], rng: np.random.Generator
) -> tuple[PlacedObject, ...]:
    """Draw sides and jitters for (colour, shape, size, cell) items until the layout is legal."""
    for _ in range(_MAX_TRIES):
        placed = []
        for color, shape, size, (row, col) in items:
            lo, hi = SIZE_RANGES[size]
            jx, jy = rng.uniform(-MAX_JITTER, MAX_JITTER, size=2)
            placed.append(
                PlacedObject(
                    color,
                    shape,
                    (row, col),
                    float(rng.uniform(lo, hi)),
                    CELL_CENTERS[col] + float(jx),
                    CELL_CENTERS[row] + float(jy),
                )
            )
        if all(map(_inside, placed)) and all(
            _separated(a, b) for a, b in itertools.combinations(placed, 2)
        ):
            return tuple(placed)
    raise RuntimeError(f"could not place {items} legally in {_MAX_TRIES} tries")


def sample_scene(
    rng: np.random.Generator,
    *,
    split: SceneSplit = "train",
    n_objects: int | None = None,
    p_repeat: float = 0.25,
) -> Scene:
    """A random scene of 1 to 4 objects.

    ``split="train"`` never uses a held-out colour-shape pair; ``"any"`` draws from all 18 pairs.
    With probability ``p_repeat`` (scenes of 2+ objects) every object shares one colour-shape pair,
    so that counting phrases ("three green triangles") are common in training captions.
    """
    if split not in ("train", "any"):
        raise ValueError(f"unknown split {split!r}; valid: 'train', 'any'")
    pairs = SEEN_PAIRS if split == "train" else ALL_PAIRS
    n = int(rng.integers(1, 5)) if n_objects is None else n_objects
    if not 1 <= n <= 4:
        raise ValueError(f"a scene holds 1 to 4 objects, not {n}")
    if n > 1 and rng.random() < p_repeat:
        chosen = [pairs[int(rng.integers(len(pairs)))]] * n
    else:
        chosen = [pairs[int(i)] for i in rng.integers(len(pairs), size=n)]
    cells = [CELLS[int(i)] for i in rng.permutation(len(CELLS))[:n]]
    sizes = [SIZES[int(i)] for i in rng.integers(len(SIZES), size=n)]
    items = [(c, s, z, cell) for (c, s), z, cell in zip(chosen, sizes, cells)]
    return Scene(place(items, rng))


def _cell_assignments(spec: SceneSpec, rng: np.random.Generator) -> list[Cell]:
    """Random distinct cells for the spec's objects honouring fixed cells and relations."""
    fixed = [o.cell for o in spec.objects]
    free_cells = [c for c in CELLS if c not in fixed]

    def legal(cells: list[Cell]) -> bool:
        return all(
            relation_holds(r.name, cells[r.subject], cells[r.object]) for r in spec.relations
        )

    open_slots = [i for i, c in enumerate(fixed) if c is None]
    for _ in range(200):
        picks = rng.permutation(len(free_cells))[: len(open_slots)]
        cells = list(fixed)
        for slot, p in zip(open_slots, picks):
            cells[slot] = free_cells[int(p)]
        if legal(cells):
            return cells
    # Rare constrained specs: enumerate every assignment and pick one uniformly.
    options = []
    for perm in itertools.permutations(free_cells, len(open_slots)):
        cells = list(fixed)
        for slot, c in zip(open_slots, perm):
            cells[slot] = c
        if legal(cells):
            options.append(cells)
    if not options:
        raise ValueError(f"no layout on the 3x3 grid satisfies this spec: {spec.to_json()}")
    return options[int(rng.integers(len(options)))]


def realize(spec: SceneSpec, rng: np.random.Generator) -> Scene:
    """A random concrete scene satisfying ``spec``; unstated sizes and cells are drawn at random."""
    cells = _cell_assignments(spec, rng)
    items = [
        (o.color, o.shape, o.size or SIZES[int(rng.integers(len(SIZES)))], cell)
        for o, cell in zip(spec.objects, cells)
    ]
    return Scene(place(items, rng))
