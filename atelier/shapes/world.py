"""The shapes world, spec v1 (``shared/SHAPES_WORLD.md``): its vocabulary and structured specs.

Notation: S is the canvas side in pixels; a cell is ``(row, col)`` on the 3 x 3 grid, row 0 at the
top and col 0 at the left. A *spec* says what a prompt asks for (objects with colour and shape and,
optionally, size and cell, plus relations between objects); a *scene* is one concrete picture
(every object with its cell, bounding-box side and centre).

Relations are the spec's four, by grid cell (``left_of``: column smaller, ``right_of``, ``above``:
row smaller, ``below``), plus ``beside``, what the paraphrases "next to" and "beside" mean: on
either side, that is ``left_of`` or ``right_of`` (the columns differ). Captions and shapes-bench
state only the four; ``beside`` comes from prompts people type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, get_args

SPEC_VERSION = "v1"

Color = Literal["red", "yellow", "green", "cyan", "blue", "purple"]
Shape = Literal["circle", "square", "triangle"]
Size = Literal["small", "large"]
SpecRelation = Literal["left_of", "right_of", "above", "below"]
RelationName = Literal[SpecRelation, "beside"]
Category = Literal[
    "single_object", "position", "size", "two_objects", "relation", "counting", "color_attribution"
]
Split = Literal["seen", "held_out"]

COLORS: tuple[Color, ...] = get_args(Color)
SHAPES: tuple[Shape, ...] = get_args(Shape)
SIZES: tuple[Size, ...] = get_args(Size)
RELATIONS: tuple[SpecRelation, ...] = get_args(SpecRelation)  # what captions and the suite state
RELATION_NAMES: tuple[RelationName, ...] = get_args(RelationName)  # everything a prompt may state
CATEGORIES: tuple[Category, ...] = get_args(Category)
SIZES_AVAILABLE = (32, 64, 128)

PALETTE: dict[Color, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (235, 200, 30),
    "green": (40, 160, 60),
    "cyan": (30, 180, 200),
    "blue": (40, 70, 210),
    "purple": (140, 50, 170),
}
BACKGROUND = (255, 255, 255)

# Bounding-box side as a fraction of S.
SIZE_RANGES: dict[Size, tuple[float, float]] = {"small": (0.14, 0.18), "large": (0.26, 0.31)}
CELL_CENTERS = (1 / 6, 1 / 2, 5 / 6)  # fractions of S, on each axis
MAX_JITTER = 0.05  # fraction of S
MIN_GAP = 0.03  # fraction of S of white between any two objects

HELD_OUT: frozenset[tuple[Color, Shape]] = frozenset(
    {("purple", "triangle"), ("cyan", "circle"), ("yellow", "square")}
)
HELD_OUT_PAIRS: tuple[tuple[Color, Shape], ...] = tuple(sorted(HELD_OUT))  # a stable order
ALL_PAIRS: tuple[tuple[Color, Shape], ...] = tuple((c, s) for c in COLORS for s in SHAPES)
SEEN_PAIRS: tuple[tuple[Color, Shape], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)

Cell = tuple[int, int]
CELLS: tuple[Cell, ...] = tuple((r, c) for r in range(3) for c in range(3))
POSITION_WORDS: dict[Cell, str] = {
    (0, 0): "top left", (0, 1): "top", (0, 2): "top right",
    (1, 0): "left", (1, 1): "center", (1, 2): "right",
    (2, 0): "bottom left", (2, 1): "bottom", (2, 2): "bottom right",
}  # fmt: skip
COUNT_WORDS = ("one", "two", "three", "four")


def relation_holds(relation: RelationName, a: Cell, b: Cell) -> bool:
    """Whether ``a <relation> b`` holds between two grid cells (the world's definition)."""
    if relation == "left_of":
        return a[1] < b[1]
    if relation == "right_of":
        return a[1] > b[1]
    if relation == "above":
        return a[0] < b[0]
    if relation == "below":
        return a[0] > b[0]
    if relation == "beside":
        return a[1] != b[1]
    raise ValueError(f"unknown relation {relation!r}; valid: {', '.join(RELATION_NAMES)}")


@dataclass(frozen=True)
class ObjectSpec:
    """One requested object; ``size`` and ``cell`` are constraints only when given."""

    color: Color
    shape: Shape
    size: Size | None = None
    cell: Cell | None = None

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; valid: {', '.join(COLORS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; valid: {', '.join(SHAPES)}")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; valid: {', '.join(SIZES)}")
        if self.cell is not None:
            object.__setattr__(self, "cell", tuple(self.cell))
            if self.cell not in CELLS:
                raise ValueError(f"cell {self.cell!r} is not on the 3x3 grid (row, col in 0..2)")

    @property
    def held_out(self) -> bool:
        return (self.color, self.shape) in HELD_OUT


@dataclass(frozen=True)
class Relation:
    """``objects[subject] <name> objects[object]``, by grid cell."""

    subject: int
    name: RelationName
    object: int

    def __post_init__(self) -> None:
        if self.name not in RELATION_NAMES:
            raise ValueError(f"unknown relation {self.name!r}; valid: {', '.join(RELATION_NAMES)}")


@dataclass(frozen=True)
class SceneSpec:
    """What a prompt asks for. An image passes when its objects match this exactly."""

    objects: tuple[ObjectSpec, ...]
    relations: tuple[Relation, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "relations", tuple(self.relations))
        if not 1 <= len(self.objects) <= 4:
            raise ValueError(f"a scene holds 1 to 4 objects, this spec has {len(self.objects)}")
        cells = [o.cell for o in self.objects if o.cell is not None]
        if len(cells) != len(set(cells)):
            raise ValueError("two objects are asked for in the same cell; a cell holds one object")
        for r in self.relations:
            n = len(self.objects)
            if not (0 <= r.subject < n and 0 <= r.object < n) or r.subject == r.object:
                raise ValueError(f"relation {r} must join two different objects of {n}")

    @property
    def held_out(self) -> bool:
        return any(o.held_out for o in self.objects)

    def to_dict(self) -> dict:
        return {
            "objects": [
                {
                    k: v
                    for k, v in (
                        ("color", o.color),
                        ("shape", o.shape),
                        ("size", o.size),
                        ("cell", list(o.cell) if o.cell else None),
                    )
                    if v is not None
                }
                for o in self.objects
            ],
            "relations": [[r.subject, r.name, r.object] for r in self.relations],
        }

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        objects = tuple(
            ObjectSpec(
                o["color"],
                o["shape"],
                o.get("size"),
                tuple(o["cell"]) if o.get("cell") is not None else None,
            )
            for o in data["objects"]
        )
        relations = tuple(Relation(int(s), n, int(o)) for s, n, o in data.get("relations", []))
        return cls(objects, relations)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class PlacedObject:
    """One object of a concrete scene; ``side`` and centre (``cx``, ``cy``) are fractions of S."""

    color: Color
    shape: Shape
    cell: Cell
    side: float
    cx: float
    cy: float

    @property
    def size(self) -> Size:
        return "small" if self.side < 0.22 else "large"


@dataclass(frozen=True)
class Scene:
    """A concrete picture, resolution-free: render it at any S."""

    objects: tuple[PlacedObject, ...]

    def spec(self, *, with_sizes: bool = True, with_cells: bool = True) -> SceneSpec:
        """The full spec this scene satisfies (every object with its size and cell)."""
        return SceneSpec(
            tuple(
                ObjectSpec(
                    o.color, o.shape, o.size if with_sizes else None, o.cell if with_cells else None
                )
                for o in self.objects
            )
        )

    @property
    def held_out(self) -> bool:
        return any((o.color, o.shape) in HELD_OUT for o in self.objects)
