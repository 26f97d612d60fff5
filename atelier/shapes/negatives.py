"""Hard negatives: false captions of a scene, each one fact away from a true one.

A contrastive model trained only on whole captions can match an image by its bag of words: "a
red circle and a blue square" and "a blue circle and a red square" hold the same words. NegCLIP
(Yuksekgonul et al. 2023, "When and why vision-language models behave like bags-of-words")
adds, for every image, a caption with one thing changed as an extra negative, so the text tower
must bind colours to shapes and words to places. Here the change is made on the caption's
:class:`SceneSpec`, not its words, and every negative is checked false for its scene by the
judge's own rule (:func:`holds`), so no "negative" is accidentally true.

Kinds of change (:data:`KINDS`): ``swap_colors`` between two objects, ``recolor`` or
``reshape`` one object, ``resize`` (small <-> large), ``move`` one placed object to a free
cell, ``relation`` (its opposite; "beside" has none), ``drop`` or ``add`` one object.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from atelier.shapes.caption import phrase
from atelier.shapes.judge import FoundObject, score
from atelier.shapes.world import (
    CELLS,
    COLORS,
    SEEN_PAIRS,
    SHAPES,
    ObjectSpec,
    Relation,
    Scene,
    SceneSpec,
)

KINDS = ("swap_colors", "recolor", "reshape", "resize", "move", "relation", "drop", "add")
_OPPOSITE = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}


def holds(spec: SceneSpec, scene: Scene) -> bool:
    """Whether ``spec`` is true of ``scene``: the judge's rule on the scene's own objects."""
    found = [
        FoundObject(o.color, o.shape, o.size, o.cell, o.side, o.cx, o.cy, fill=1.0, skew=0.0)
        for o in scene.objects
    ]
    return score(spec, found).passed


def _other(rng: np.random.Generator, options: tuple[str, ...], current: str) -> str:
    rest = [o for o in options if o != current]
    return rest[int(rng.integers(len(rest)))]


def _set(spec: SceneSpec, k: int, obj: ObjectSpec) -> SceneSpec:
    objects = list(spec.objects)
    objects[k] = obj
    return SceneSpec(tuple(objects), spec.relations)


def change(spec: SceneSpec, kind: str, rng: np.random.Generator) -> SceneSpec | None:
    """``spec`` with one change of ``kind``, or None where the kind does not apply."""
    objects, n = spec.objects, len(spec.objects)
    k = int(rng.integers(n))
    if kind == "swap_colors":
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)
                 if objects[i].color != objects[j].color]  # fmt: skip
        if not pairs:
            return None
        i, j = pairs[int(rng.integers(len(pairs)))]
        swapped = _set(spec, i, replace(objects[i], color=objects[j].color))
        return _set(swapped, j, replace(objects[j], color=objects[i].color))
    if kind == "recolor":
        return _set(spec, k, replace(objects[k], color=_other(rng, COLORS, objects[k].color)))
    if kind == "reshape":
        return _set(spec, k, replace(objects[k], shape=_other(rng, SHAPES, objects[k].shape)))
    if kind == "resize":
        sized = [i for i, o in enumerate(objects) if o.size is not None]
        if not sized:
            return None
        i = sized[int(rng.integers(len(sized)))]
        flipped = "large" if objects[i].size == "small" else "small"
        return _set(spec, i, replace(objects[i], size=flipped))
    if kind == "move":
        placed = [i for i, o in enumerate(objects) if o.cell is not None]
        free = [c for c in CELLS if c not in {o.cell for o in objects}]
        if not placed or not free:
            return None
        i = placed[int(rng.integers(len(placed)))]
        return _set(spec, i, replace(objects[i], cell=free[int(rng.integers(len(free)))]))
    if kind == "relation":
        if not spec.relations or spec.relations[0].name not in _OPPOSITE:  # "beside" has none
            return None
        r = spec.relations[0]
        return SceneSpec(objects, (Relation(r.subject, _OPPOSITE[r.name], r.object),))
    if kind == "drop":
        related = {r.subject for r in spec.relations} | {r.object for r in spec.relations}
        free = [i for i in range(n) if i not in related]
        if n < 2 or not free:
            return None
        i = free[int(rng.integers(len(free)))]
        keep = [j for j in range(n) if j != i]
        index = {old: new for new, old in enumerate(keep)}
        relations = tuple(Relation(index[r.subject], r.name, index[r.object])
                          for r in spec.relations)  # fmt: skip
        return SceneSpec(tuple(objects[j] for j in keep), relations)
    if kind == "add":
        if n >= 4:
            return None
        color, shape = SEEN_PAIRS[int(rng.integers(len(SEEN_PAIRS)))]
        return SceneSpec((*objects, ObjectSpec(color, shape)), spec.relations)
    raise ValueError(f"unknown kind of change {kind!r}; valid: {', '.join(KINDS)}")


def check_focus(focus: tuple[str, ...], focus_p: float) -> None:
    """Raise ``ValueError`` naming the problem if ``focus`` holds an unknown kind or
    ``focus_p`` is not a probability."""
    unknown = [f for f in focus if f not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind of change {unknown[0]!r}; valid: {', '.join(KINDS)}")
    if not 0.0 <= focus_p <= 1.0:
        raise ValueError(f"the focus probability must be in [0, 1], got {focus_p}")


def hard_negatives(
    scene: Scene,
    spec: SceneSpec,
    phrasing: dict,
    k: int,
    rng: np.random.Generator,
    *,
    allow_held_out: bool = False,
    focus: tuple[str, ...] = (),
    focus_p: float = 0.0,
) -> list[tuple[str, str]]:
    """``k`` false captions of ``scene`` as ``(text, kind)``, each ``spec`` with one change.

    The kind of change is drawn uniformly from :data:`KINDS`, except that with probability
    ``focus_p`` it is drawn from ``focus`` first (where that kind applies to the scene; else
    uniformly as usual): binding's kinds are rare otherwise (a colour swap needs two objects of
    different colours, and is one kind in eight).

    ``spec`` is a true caption's spec and ``phrasing`` the bit-generator state its text was
    phrased from: each negative is phrased from that same state, so where the change keeps the
    caption's structure the words come in the same order and differ only where the fact does.
    A held-out colour-shape pair is never written unless ``allow_held_out`` (a train-split
    model must not learn those words as always false).
    """
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    check_focus(focus, focus_p)

    def false_and_allowed(changed: SceneSpec | None) -> bool:
        return (changed is not None and not holds(changed, scene)
                and (allow_held_out or not changed.held_out))  # fmt: skip

    out: list[tuple[str, str]] = []
    while len(out) < k:
        changed = None
        if focus and focus_p > 0 and rng.random() < focus_p:
            kind = focus[int(rng.integers(len(focus)))]
            changed = change(spec, kind, rng)
            if not false_and_allowed(changed):  # the focus does not apply: a uniform draw
                changed = None
        if changed is None:
            kind = KINDS[int(rng.integers(len(KINDS)))]
            changed = change(spec, kind, rng)
        if not false_and_allowed(changed):
            continue
        words = np.random.default_rng()
        words.bit_generator.state = phrasing
        out.append((phrase(changed, words), kind))
    return out
