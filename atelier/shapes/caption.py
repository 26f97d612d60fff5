"""Write prompts and training captions in the shapes world's language.

:func:`phrase` writes a :class:`SceneSpec` as English, stating exactly what the spec states, in
one of several phrasings (article or none, a picture-prefix or none, "above" or "over", list
punctuation, grouped counts "three green triangles"). :func:`caption` turns a concrete scene into a
complete, true training caption: it decides at random which facts to state (sizes, positions, one
relation) and phrases the resulting sub-spec, so every object is named and every word holds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from atelier.shapes.world import (
    COUNT_WORDS,
    POSITION_WORDS,
    RELATIONS,
    ObjectSpec,
    Relation,
    Scene,
    SceneSpec,
    relation_holds,
)

_PREFIXES = ("a picture of", "an image of", "a drawing of", "an image with", "there is")
_RELATION_WORDS = {
    "left_of": ("left of", "to the left of"),
    "right_of": ("right of", "to the right of"),
    "above": ("above", "over"),
    "below": ("below", "under"),
    "beside": ("next to", "beside"),
}
_CORNERS = {"top left", "top right", "bottom left", "bottom right"}


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun(obj: ObjectSpec, count: int, article: str) -> str:
    size = f"{obj.size} " if obj.size else ""
    if count == 1:
        det = f"{article} " if article else ""
        return f"{det}{size}{obj.color} {obj.shape}"
    return f"{COUNT_WORDS[count - 1]} {size}{obj.color} {obj.shape}s"


def _position(cell: tuple[int, int], rng: np.random.Generator, plain: bool) -> str:
    place = POSITION_WORDS[cell]
    if plain:
        return f"on the {place}" if place in ("left", "right") else f"in the {place}"
    if place in _CORNERS and rng.random() < 0.3:
        return f"in the {place} corner"
    if place in ("left", "right"):
        return f"on the {place}"
    return f"{_pick(rng, ('in the', 'at the'))} {place}"


def phrase(spec: SceneSpec, rng: np.random.Generator, *, plain: bool = False) -> str:
    """English for ``spec``: every object once, with exactly the sizes, cells and relations given.

    Identical objects with no cell and no relation are grouped into a count ("two red circles").
    ``plain=True`` always writes the canonical form: article "a", no prefix, first synonyms.
    """
    article = "a" if plain or rng.random() < 0.75 else _pick(rng, ("", "one"))
    in_relation = {r.subject for r in spec.relations} | {r.object for r in spec.relations}
    if len(in_relation) != 2 * len(spec.relations):
        raise ValueError("phrase() writes at most one relation per object")
    items: list[str] = []
    done: set[int] = set()
    for r in spec.relations:
        words = _RELATION_WORDS[r.name][0 if plain else int(rng.integers(2))]
        a, b = (spec.objects[k] for k in (r.subject, r.object))
        left = _noun(a, 1, article) + (f" {_position(a.cell, rng, plain)}" if a.cell else "")
        right = _noun(b, 1, article) + (f" {_position(b.cell, rng, plain)}" if b.cell else "")
        items.append(f"{left} {words} {right}")
        done |= {r.subject, r.object}
    for k, obj in enumerate(spec.objects):
        if k in done:
            continue
        if obj.cell is not None:
            items.append(f"{_noun(obj, 1, article)} {_position(obj.cell, rng, plain)}")
            done.add(k)
            continue
        same = [j for j in range(k, len(spec.objects)) if j not in done and spec.objects[j] == obj]
        count = len(same) if (plain or rng.random() < 0.9) else 1
        items.append(_noun(obj, count, article))
        done |= set(same[:count])
    if not plain:
        order = rng.permutation(len(items))
        items = [items[int(i)] for i in order]
    if len(items) == 1:
        text = items[0]
    else:
        comma = "," if (not plain and len(items) > 2 and rng.random() < 0.3) else ""
        text = ", ".join(items[:-1]) + f"{comma} and {items[-1]}"
    if not plain and rng.random() < 0.2:
        options = _PREFIXES if len(spec.objects) == 1 else _PREFIXES[:-1]  # no "there is" for many
        text = f"{_pick(rng, options)} {text}"
    return text


def caption(
    scene: Scene,
    rng: np.random.Generator,
    *,
    p_sizes: float = 0.5,
    p_positions: float = 0.4,
    p_relation: float = 0.35,
) -> str:
    """A complete, true caption of ``scene`` with randomly chosen facts and phrasing."""
    spec = caption_spec(scene, rng, p_sizes=p_sizes, p_positions=p_positions, p_relation=p_relation)
    return phrase(spec, rng)


def caption_spec(
    scene: Scene,
    rng: np.random.Generator,
    *,
    p_sizes: float = 0.5,
    p_positions: float = 0.4,
    p_relation: float = 0.35,
) -> SceneSpec:
    """What :func:`caption` states about ``scene``: every object, and at random its sizes,
    cells and one true relation (drawing from ``rng`` exactly as :func:`caption` does)."""
    with_sizes = rng.random() < p_sizes
    with_cells = rng.random() < p_positions
    spec = scene.spec(with_sizes=with_sizes, with_cells=with_cells)
    objects = list(spec.objects)
    relations: list[Relation] = []
    if len(objects) >= 2 and rng.random() < p_relation:
        i, j = (int(k) for k in rng.choice(len(objects), size=2, replace=False))
        a, b = scene.objects[i].cell, scene.objects[j].cell
        true = [name for name in RELATIONS if relation_holds(name, a, b)]
        relations.append(Relation(i, _pick(rng, true), j))
        # Positions inside a relation item read badly; the relation carries the layout.
        objects[i] = replace(objects[i], cell=None)
        objects[j] = replace(objects[j], cell=None)
    return SceneSpec(tuple(objects), tuple(relations))
