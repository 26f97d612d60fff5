"""What a shapes prompt asks of each grid cell, as targets of the noise-aware cell classifier.

A prompt parsed into its :class:`~atelier.shapes.world.SceneSpec` names objects, some with a
cell, and relations between them; most name no cell ("two red circles"). Classifier guidance
needs a class for every cell's colour, shape and size (``models/noised_classifier.py``), so at
every step the layout is chosen that the classifier itself finds most likely among those the
spec allows:

    A* = argmax over assignments A of objects to distinct cells, consistent with every stated
         cell and relation, of  sum_i log p(o_i at A_i | x_t) + sum_{c not in A} log p(empty_c)

and the targets are that layout (the others empty). The gradient then pulls the sample toward
the layout it is already closest to, instead of an arbitrary one it must be dragged to. With at
most 4 objects on 9 cells there are at most 3,024 assignments, scored at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from atelier.models.noised_classifier import ATTRIBUTES, N_CELLS, N_HEADS, WIDEST
from atelier.shapes.world import CELLS, COLORS, SHAPES, SIZES, SceneSpec, relation_holds

Chooser = Callable[[torch.Tensor], torch.Tensor]


def allowed_layouts(spec: SceneSpec) -> torch.Tensor:
    """Every assignment of the spec's objects to distinct cells (indices 0..8, row-major) that
    keeps its stated cells and relations: (A, n) long; a ValueError when there is none."""
    n = len(spec.objects)
    rows = []
    for cells in itertools.permutations(range(N_CELLS), n):
        at = [CELLS[c] for c in cells]
        if any(o.cell is not None and tuple(o.cell) != a for o, a in zip(spec.objects, at)):
            continue
        if all(relation_holds(r.name, at[r.subject], at[r.object]) for r in spec.relations):
            rows.append(cells)
    if not rows:
        raise ValueError("no layout on the 3x3 grid satisfies this prompt's cells and relations")
    return torch.tensor(rows, dtype=torch.long)


def object_classes(spec: SceneSpec) -> torch.Tensor:
    """(n, 3) colour, shape and size classes of the spec's objects (size -1 when not stated)."""
    return torch.tensor([
        [1 + COLORS.index(o.color), 1 + SHAPES.index(o.shape),
         -1 if o.size is None else 1 + SIZES.index(o.size)]
        for o in spec.objects
    ])  # fmt: skip


def layout_targets(spec: SceneSpec) -> Chooser:
    """A function of one image's logits (27, 7) -> its targets (27,), the most likely layout."""
    layouts = allowed_layouts(spec)  # (A, n)
    classes = object_classes(spec)  # (n, 3)
    stated = classes >= 0

    def choose(logits: torch.Tensor) -> torch.Tensor:
        lp = logits.detach().double().log_softmax(-1).view(N_CELLS, len(ATTRIBUTES), WIDEST)
        empty = lp[:, :, 0].sum(1)  # (9,)
        # log p of object i in cell c: (n, 9), a size it does not state counting nothing
        per_attr = lp[:, torch.arange(len(ATTRIBUTES)), :]  # (9, 3, 7)
        picked = per_attr[:, torch.arange(3)[None, :], classes.clamp(min=0)]  # (9, n, 3)
        obj = (picked * stated[None].double()).sum(-1).T  # (n, 9)
        n = classes.shape[0]
        score = obj[torch.arange(n)[None, :], layouts].sum(1) - empty[layouts].sum(1)  # (A,)
        best = layouts[int(score.argmax())]  # (n,)
        target = torch.zeros(N_CELLS, len(ATTRIBUTES), dtype=torch.long)
        target[best] = classes
        return target.flatten()

    return choose


def batch_chooser(specs: list[SceneSpec]) -> Chooser:
    """Targets (B, 27) from logits (B, 27, 7), image b's by its own spec's layouts."""
    choosers = [layout_targets(spec) for spec in specs]

    def choose(logits: torch.Tensor) -> torch.Tensor:
        if logits.shape != (len(choosers), N_HEADS, WIDEST):
            raise ValueError(f"expected logits ({len(choosers)}, {N_HEADS}, {WIDEST}), "
                             f"got {tuple(logits.shape)}")  # fmt: skip
        return torch.stack([c(row) for c, row in zip(choosers, logits)]).to(logits.device)

    return choose
