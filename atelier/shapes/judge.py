"""The shapes judge: find the objects in any RGB image and score it strictly against a spec.

Pixel model. A shapes-world pixel is a blend of one palette colour c and white w:
``p = w + alpha * (c - w)``. For every pixel and colour we solve for ``alpha`` by projection
and keep the colour with the smallest residual; anti-aliased and blurred edges then get the
right colour with a fractional ``alpha`` instead of a wrong nearby colour. Pixels with
``alpha >= 0.5`` are ink of that colour; dark or saturated pixels that fit no palette colour
are *foreign* ink.

Objects. Connected components of each colour (noise specks below a quarter of the smallest legal
object are ignored) become objects. Over the soft coverage ``alpha`` of a component grown by half
the minimum gap: the width w is the sum of the column maxima of ``alpha``; the fill ratio
``sum(alpha) / w^2`` is 1 for a square and pi/4 for a disc; the skewness of the vertical mass
profile is 0 for both and -2 sqrt(2)/5 for an apex-up triangle. The nearest of the three
prototypes in (fill, skew), in units of their measured spread, names the shape, or "unknown" when
none is near. The side is read from the area (blur and anti-aliasing keep it); small is below
0.22 S, large above, and a side outside 0.09 S to 0.40 S is off-scale. The cell is the third of
each axis holding the box centre.

Scoring is strict (SHAPES_WORLD.md): the same multiset of (colour, shape), no extra objects, and
every stated size, cell and relation holds under some one-to-one matching.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from atelier.shapes.world import (
    BACKGROUND,
    COLORS,
    MIN_GAP,
    PALETTE,
    POSITION_WORDS,
    SIZE_RANGES,
    Cell,
    SceneSpec,
    relation_holds,
)

INK_ALPHA = 0.5
MAX_RESIDUAL = 70.0  # RGB units: how far an ink pixel may sit from its colour's white-blend line
FOREIGN_DISTANCE = 100.0  # RGB distance from white beyond which unexplained pixels are ink
MIN_AREA = (
    0.25 * 0.5 * SIZE_RANGES["small"][0] ** 2
)  # fraction of S^2: a quarter of the least object
SMALL_LARGE_SPLIT = 0.22
SCALE_RANGE = (0.09, 0.40)


@dataclass(frozen=True)
class _Prototype:
    """Where a shape sits in (fill, skew) feature space, as measured on renders at 32 to 128 px."""

    fill: float
    skew: float
    fill_scale: float
    skew_scale: float
    area_ratio: float  # true area / side^2, to read the side off the blur-invariant area


# An apex-up triangle's vertical mass profile grows linearly downward: skew -2 sqrt(2) / 5. Its
# measured fill exceeds 1/2 because a tilted edge shortens the widest full row by up to a pixel.
PROTOTYPES = {
    "square": _Prototype(1.0, 0.0, 0.06, 0.12, 1.0),
    "circle": _Prototype(0.79, 0.0, 0.05, 0.12, np.pi / 4),
    "triangle": _Prototype(0.62, -2 * np.sqrt(2) / 5, 0.13, 0.12, 0.5),
}
MAX_PROTOTYPE_DISTANCE = 2.5
MAX_ASPECT = 1.3

_WHITE = np.asarray(BACKGROUND, dtype=np.float64)
# A palette: colour name -> RGB. The world's six, or an extension naming more (a concept colour
# a fine-tune learns, ``shapes/concept.py``): every colour is found and measured the same way.
Palette = dict[str, tuple[int, int, int]]
WORLD_PALETTE: Palette = {c: PALETTE[c] for c in COLORS}


def _directions(palette: Palette) -> np.ndarray:
    """(K, 3): each palette colour minus white, in the palette's order."""
    return np.stack([np.asarray(rgb, dtype=np.float64) - _WHITE for rgb in palette.values()])


@dataclass(frozen=True)
class FoundObject:
    """An object the judge found; ``side``, ``cx``, ``cy`` are fractions of the image side."""

    color: str
    shape: str  # circle | square | triangle | unknown
    size: str  # small | large | off-scale
    cell: Cell
    side: float
    cx: float
    cy: float
    fill: float
    skew: float

    def describe(self) -> str:
        return f"{self.size} {self.color} {self.shape} in the {POSITION_WORDS[self.cell]}"


@dataclass
class Verdict:
    """The judge's answer: pass/fail, the reasons for a fail, and what it saw."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    objects: list[FoundObject] = field(default_factory=list)


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or (H, W, 3|4) uint8 array -> (H, W, 3) float64 RGB (alpha over white)."""
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "P", "PA"):
            rgba = image.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
            image = Image.alpha_composite(canvas, rgba)
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise ValueError(
            f"the judge needs an RGB image, an (H, W, 3) uint8 array; got {arr.dtype} {arr.shape}"
        )
    if arr.shape[2] == 4:
        a = arr[..., 3:4] / 255.0
        return arr[..., :3] * a + _WHITE * (1 - a)
    return arr.astype(np.float64)


def pixel_model(
    rgb: np.ndarray, palette: Palette = WORLD_PALETTE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: best palette index (H, W), alphas for all K colours (H, W, K), foreign mask."""
    directions = _directions(palette)  # (K, 3)
    v = rgb - _WHITE  # (H, W, 3)
    alphas = np.einsum("hwc,kc->hwk", v, directions) / (directions**2).sum(1)  # (H, W, K)
    alphas = np.clip(alphas, 0.0, 1.0)
    residual = np.linalg.norm(
        v[..., None, :] - alphas[..., None] * directions, axis=-1
    )  # (H, W, K)
    best = residual.argmin(-1)  # (H, W)
    best_res = np.take_along_axis(residual, best[..., None], -1)[..., 0]
    best_alpha = np.take_along_axis(alphas, best[..., None], -1)[..., 0]
    fits = best_res <= MAX_RESIDUAL
    label = np.where(fits & (best_alpha >= INK_ALPHA), best, -1)
    foreign = ~fits & (np.linalg.norm(v, axis=-1) > FOREIGN_DISTANCE)
    return label, alphas, foreign


def _shape_of(fill: float, skew: float, aspect: float, prototypes: Mapping[str, _Prototype]) -> str:
    if aspect > MAX_ASPECT:
        return "unknown"
    dists = {
        name: np.hypot((fill - p.fill) / p.fill_scale, (skew - p.skew) / p.skew_scale)
        for name, p in prototypes.items()
    }
    name = min(dists, key=dists.get)
    return name if dists[name] <= MAX_PROTOTYPE_DISTANCE else "unknown"


def _measure(
    alpha: np.ndarray,
    height: int,
    width: int,
    color: str,
    prototypes: Mapping[str, _Prototype] = PROTOTYPES,
) -> FoundObject:
    """Features of one object from its soft coverage ``alpha`` (H, W), zero outside the object."""
    cols, rows = alpha.max(axis=0), alpha.max(axis=1)  # (W,), (H,)
    w, h = cols.sum(), rows.sum()
    ys = np.arange(height) + 0.5
    cx = (cols * np.arange(width)).sum() / w + 0.5
    cy = (rows * ys).sum() / h
    mass = alpha.sum(axis=1)  # (H,) vertical mass profile
    mean = (mass * ys).sum() / mass.sum()
    var = (mass * (ys - mean) ** 2).sum() / mass.sum()
    skew = float((mass * (ys - mean) ** 3).sum() / mass.sum() / max(var, 1e-9) ** 1.5)
    # Every world shape has a square bounding box and a full-width bottom or middle row, so the
    # column-maxima width is the side; the row maxima undercount a triangle's thin apex.
    fill = float(alpha.sum() / w**2)
    aspect = float(max(w, h) / max(min(w, h), 1e-6))
    shape = _shape_of(fill, skew, aspect, prototypes)
    if shape == "unknown":
        side = float(max(w / width, h / height))
    else:
        side = float(np.sqrt(alpha.sum() / prototypes[shape].area_ratio / (width * height)))
    if not SCALE_RANGE[0] <= side <= SCALE_RANGE[1]:
        size = "off-scale"
    else:
        size = "small" if side < SMALL_LARGE_SPLIT else "large"
    cell = (min(int(3 * cy / height), 2), min(int(3 * cx / width), 2))
    return FoundObject(
        color, shape, size, cell, side, float(cx / width), float(cy / height), fill, skew
    )


def detect(
    image: Image.Image | np.ndarray,
    palette: Palette = WORLD_PALETTE,
    prototypes: Mapping[str, _Prototype] = PROTOTYPES,
) -> list[FoundObject]:
    """Every object in ``image``, in reading order (top to bottom, left to right). ``palette``
    names the colours and ``prototypes`` the shapes to look for (the world's by default; an
    extension adds a concept's, ``shapes/concept.py``)."""
    rgb = as_rgb_array(image)
    height, width = rgb.shape[:2]
    label, alphas, foreign = pixel_model(rgb, palette)
    min_pixels = MIN_AREA * height * width
    # Grow each component by half the minimum gap, so edges are counted but never a neighbour's.
    radius = max(1, round(MIN_GAP / 2 * max(height, width)))
    grow = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    found: list[FoundObject] = []
    for k, color in enumerate(palette):
        components, n = ndimage.label(label == k, structure=np.ones((3, 3)))
        for idx, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            region = ndimage.binary_dilation(components == idx, structure=grow)
            alpha = np.where(region, alphas[..., k], 0.0)
            if alpha.sum() < min_pixels:
                continue
            found.append(_measure(alpha, height, width, color, prototypes))
    components, _ = ndimage.label(foreign, structure=np.ones((3, 3)))
    for idx, box in enumerate(ndimage.find_objects(components), start=1):
        mask = components[box] == idx
        if box is not None and mask.sum() >= min_pixels:
            ys, xs = box
            side = max(xs.stop - xs.start, ys.stop - ys.start)
            cx, cy = (xs.start + xs.stop) / 2, (ys.start + ys.stop) / 2
            cell = (min(int(3 * cy / height), 2), min(int(3 * cx / width), 2))
            found.append(
                FoundObject(
                    "foreign",
                    "unknown",
                    "off-scale",
                    cell,
                    side / max(height, width),
                    cx / width,
                    cy / height,
                    0.0,
                    0.0,
                )
            )
    return sorted(found, key=lambda o: (o.cell, o.cx))


def _violations(spec: SceneSpec, found: list[FoundObject], match: tuple[int, ...]) -> list[str]:
    out = []
    for obj, j in zip(spec.objects, match):
        got = found[j]
        name = f"{obj.color} {obj.shape}"
        if got.size == "off-scale":
            out.append(f"the {name} is off-scale (side {got.side:.2f} S)")
        elif obj.size is not None and got.size != obj.size:
            out.append(f"the {name} is {got.size}, asked {obj.size}")
        if obj.cell is not None and got.cell != obj.cell:
            out.append(
                f"the {name} is in the {POSITION_WORDS[got.cell]}, asked {POSITION_WORDS[obj.cell]}"
            )
    for r in spec.relations:
        a, b = found[match[r.subject]], found[match[r.object]]
        if not relation_holds(r.name, a.cell, b.cell):
            sa, sb = spec.objects[r.subject], spec.objects[r.object]
            out.append(
                f"the {sa.color} {sa.shape} is not {r.name.replace('_', ' ')} "
                f"the {sb.color} {sb.shape}"
            )
    return out


def score(spec: SceneSpec, found: list[FoundObject]) -> Verdict:
    """Strictly compare detected objects with ``spec``."""
    want = Counter((o.color, o.shape) for o in spec.objects)
    have = Counter((o.color, o.shape) for o in found)
    missing, extra = want - have, have - want
    if missing or extra:
        reasons = [f"missing {n} x {c} {s}" for (c, s), n in sorted(missing.items())]
        reasons += [f"extra {n} x {c} {s}" for (c, s), n in sorted(extra.items())]
        return Verdict(False, reasons, found)
    best: list[str] | None = None
    for perm in itertools.permutations(range(len(found))):
        if any(
            (o.color, o.shape) != (found[j].color, found[j].shape)
            for o, j in zip(spec.objects, perm)
        ):
            continue
        v = _violations(spec, found, perm)
        if not v:
            return Verdict(True, [], found)
        if best is None or len(v) < len(best):
            best = v
    return Verdict(False, best or ["no matching of objects satisfies the spec"], found)


def judge(image: Image.Image | np.ndarray, spec: SceneSpec) -> Verdict:
    """Detect the objects in ``image`` and score them strictly against ``spec``."""
    return score(spec, detect(image))
