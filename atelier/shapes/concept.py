"""A concept the shapes world lacks, for teaching a trained model something new (personalisation):
a **cross** (a plus sign, two bars a third of its side thick), always large, named in captions by
a rare token of the user's choice ("a red sks in the top left").

Why a cross: the judge can tell it from every world shape (fill 5/9 with no vertical skew, where
a disc fills pi/4, a square 1 and an apex-up triangle has skew -0.57), and the shipped
autoencoder keeps a large one (its round trip reads fill 0.54 to 0.59; small crosses come back
as discs, so the concept is large only). A new colour was tried first: shapes-vae, trained on
the six colours, returns an orange shape red.

The judge is extended, not changed: :func:`detect_concept` is
:func:`~atelier.shapes.judge.detect` with one more shape prototype, :data:`CROSS`; shapes,
colours, sizes and cells are read as for any object, and scoring is the same strict
:func:`~atelier.shapes.judge.score`.

The training set (:func:`training_scenes`, 5 to 20 images) shows crosses only in red, blue and
green, only in the four cells of the top-left 2 x 2 block, half of them beside a world object
of those colours. The suite (:func:`concept_suite`) asks for what it never showed: yellow,
purple and cyan crosses, in the five cells of the right column and bottom row, and beside world
objects of the unseen colours. A pass means the token was learnt as a shape, not as the
training pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from atelier.shapes.judge import PROTOTYPES, FoundObject, Verdict, _Prototype, detect, score
from atelier.shapes.render import render
from atelier.shapes.scene import place
from atelier.shapes.world import CELLS, HELD_OUT, POSITION_WORDS, SHAPES, Cell, PlacedObject, Scene

CONCEPT_SHAPE = "cross"
ARM = 1 / 3  # bar thickness as a fraction of the side
# Measured on renders at 64 px: fill 0.55 to 0.57, skew within +-0.04; through shapes-vae 0.54 to
# 0.59. A cross is 4.6 disc units and 4.7 triangle units away from those prototypes.
CROSS = _Prototype(fill=5 / 9, skew=0.0, fill_scale=0.04, skew_scale=0.12, area_ratio=5 / 9)
CONCEPT_PROTOTYPES = {**PROTOTYPES, CONCEPT_SHAPE: CROSS}

TRAIN_COLORS = ("red", "blue", "green")
TEST_COLORS = ("yellow", "purple", "cyan")
TRAIN_CELLS: tuple[Cell, ...] = ((0, 0), (0, 1), (1, 0), (1, 1))
TEST_CELLS: tuple[Cell, ...] = tuple(c for c in CELLS if c not in TRAIN_CELLS)
MAX_TRAINING_IMAGES = 20


def cross_coverage(obj: PlacedObject, size: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Inside-test of a cross (for :func:`~atelier.shapes.render.render`'s ``shapes``)."""
    half = obj.side * size / 2
    x, y = np.abs(xs[None, :] - obj.cx * size), np.abs(ys[:, None] - obj.cy * size)
    bar = half * ARM
    return ((x <= half) & (y <= bar)) | ((y <= half) & (x <= bar))


def render_concept(scene: Scene, size: int = 64) -> np.ndarray:
    """A scene that may hold crosses, rendered as the world renders its shapes."""
    return render(scene, size, shapes={CONCEPT_SHAPE: cross_coverage})


def detect_concept(image: Image.Image | np.ndarray) -> list[FoundObject]:
    """The judge's objects, crosses among the shapes it tells apart."""
    return detect(image, prototypes=CONCEPT_PROTOTYPES)


@dataclass(frozen=True)
class Wanted:
    """One asked object, which may be a cross (``size`` and ``cell`` optional)."""

    color: str
    shape: str
    size: str | None = None
    cell: Cell | None = None


@dataclass(frozen=True)
class ConceptSpec:
    """What a concept prompt asks for, scored by :func:`~atelier.shapes.judge.score` exactly
    as a :class:`~atelier.shapes.world.SceneSpec` is (no relations are asked)."""

    objects: tuple[Wanted, ...]
    relations: tuple = field(default=())


@dataclass(frozen=True)
class ConceptPrompt:
    """A suite entry: the prompt (naming the concept by its token) and its spec."""

    prompt: str
    spec: ConceptSpec
    kind: str  # "position": one cross in an unseen cell; "pair": beside a world object


def _where(cell: Cell) -> str:
    words = POSITION_WORDS[cell]
    return f"on the {words}" if words in ("left", "right") else f"in the {words}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def check_token(token: str) -> str:
    """``token`` if it can name a concept: one lower-case word the shapes world does not use."""
    from atelier.shapes.parse import VOCABULARY

    if not (token.isascii() and token.isalpha() and token.islower()):
        raise ValueError(f"the token must be one lower-case word of letters, got {token!r}")
    if token in VOCABULARY or token == CONCEPT_SHAPE:
        raise ValueError(f"the token {token!r} is a word the shapes world already uses; "
                         "pick a rare one (e.g. sks)")  # fmt: skip
    return token


def training_scenes(n: int, *, token: str, seed: int = 0) -> list[tuple[Scene, str]]:
    """``n`` (5 to 20) scenes, each with one large cross in a training colour and cell (half
    of them beside a world object of a training colour), and a true caption naming the cross
    by ``token``."""
    check_token(token)
    if not 5 <= n <= MAX_TRAINING_IMAGES:
        raise ValueError(f"a concept set holds 5 to {MAX_TRAINING_IMAGES} images, not {n}")
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        color = TRAIN_COLORS[i % len(TRAIN_COLORS)]
        cell = TRAIN_CELLS[i % len(TRAIN_CELLS)]
        items = [(color, CONCEPT_SHAPE, "large", cell)]
        size_word = "large " if rng.random() < 0.5 else ""
        text = f"a {size_word}{color} {token}"
        if rng.random() < 0.6:
            text += f" {_where(cell)}"
        if i % 2:
            while True:
                partner = (TRAIN_COLORS[int(rng.integers(3))], SHAPES[int(rng.integers(3))])
                if partner not in HELD_OUT:
                    break
            free = [c for c in CELLS if c != cell]
            other = free[int(rng.integers(len(free)))]
            items.append((*partner, "large" if rng.random() < 0.5 else "small", other))
            text += f" and {_article(partner[0])} {partner[0]} {partner[1]}"
        out.append((Scene(place(items, rng)), text))
    return out


def concept_suite(token: str) -> list[ConceptPrompt]:
    """24 prompts the training set never showed: a cross of each unseen colour in each unseen
    cell (15), and beside a world object of an unseen colour (9)."""
    check_token(token)
    out = []
    for color in TEST_COLORS:
        for cell in TEST_CELLS:
            out.append(ConceptPrompt(
                f"{_article(color)} {color} {token} {_where(cell)}",
                ConceptSpec((Wanted(color, CONCEPT_SHAPE, cell=cell),)), "position",
            ))  # fmt: skip
    for k, color in enumerate(TEST_COLORS):
        for j, shape in enumerate(SHAPES):
            partner = TEST_COLORS[(k + 1 + j) % len(TEST_COLORS)]
            if (partner, shape) in HELD_OUT:  # the base model's own held-out pairs stay out
                partner = TEST_COLORS[(k + 2 + j) % len(TEST_COLORS)]
            out.append(ConceptPrompt(
                f"{_article(color)} {color} {token} and {_article(partner)} {partner} {shape}",
                ConceptSpec((Wanted(color, CONCEPT_SHAPE), Wanted(partner, shape))), "pair",
            ))  # fmt: skip
    return out


def judge_concept(image: Image.Image | np.ndarray, prompt: ConceptPrompt) -> Verdict:
    """The strict judge, crosses among the shapes it knows."""
    return score(prompt.spec, detect_concept(image))


def concept_drawn(verdict: Verdict, prompt: ConceptPrompt) -> bool:
    """Whether the image holds the asked cross in its colour, whatever else is wrong: a softer
    reading than a strict pass."""
    asked = prompt.spec.objects[0]
    return any((o.color, o.shape) == (asked.color, asked.shape) for o in verdict.objects)
