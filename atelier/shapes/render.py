"""Rasterise a shapes-world :class:`Scene` at side S, with anti-aliased edges.

Each pixel's coverage by a shape is the fraction of a k x k grid of sub-pixel samples that fall
inside it (supersampling), and the pixel is ``coverage * colour + (1 - coverage) * white``. Objects
never overlap, so compositing order does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from atelier.shapes.world import BACKGROUND, PALETTE, SIZES_AVAILABLE, PlacedObject, Scene

SUPERSAMPLE = 4


# An inside-test for a shape the world lacks (a concept's, ``shapes/concept.py``): the object,
# the canvas side and the sample points (pixel units) -> a bool grid (len(ys), len(xs)).
Coverage = Callable[[PlacedObject, int, np.ndarray, np.ndarray], np.ndarray]


def _coverage(obj: PlacedObject, size: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Inside-test of ``obj`` at sample points (pixel units): a bool grid (len(ys), len(xs))."""
    cx, cy, half = obj.cx * size, obj.cy * size, obj.side * size / 2
    x, y = xs[None, :], ys[:, None]
    if obj.shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= half**2
    if obj.shape == "square":
        return (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    if obj.shape == "triangle":  # isosceles, apex up, base horizontal, height = base = side
        top = cy - half
        return (y >= top) & (y <= cy + half) & (np.abs(x - cx) <= (y - top) / 2)
    raise ValueError(f"unknown shape {obj.shape!r}")


def render(
    scene: Scene,
    size: int = 64,
    *,
    supersample: int = SUPERSAMPLE,
    palette: Mapping[str, tuple[int, int, int]] = PALETTE,
    shapes: Mapping[str, Coverage] | None = None,
) -> np.ndarray:
    """Render ``scene`` to an (S, S, 3) uint8 RGB array on a white background. ``palette``
    gives each colour name its RGB and ``shapes`` inside-tests of shapes the world lacks (both
    for extensions with a concept's colour or shape)."""
    if size not in SIZES_AVAILABLE:
        raise ValueError(f"size {size} is not a shapes-world size; use one of {SIZES_AVAILABLE}")
    canvas = np.empty((size, size, 3), dtype=np.float64)
    canvas[:] = BACKGROUND
    k = supersample
    offsets = (np.arange(k) + 0.5) / k
    for obj in scene.objects:
        half = obj.side * size / 2
        x0 = max(int(np.floor(obj.cx * size - half)) - 1, 0)
        x1 = min(int(np.ceil(obj.cx * size + half)) + 1, size)
        y0 = max(int(np.floor(obj.cy * size - half)) - 1, 0)
        y1 = min(int(np.ceil(obj.cy * size + half)) + 1, size)
        xs = (np.arange(x0, x1)[:, None] + offsets[None, :]).ravel()  # (W * k,)
        ys = (np.arange(y0, y1)[:, None] + offsets[None, :]).ravel()  # (H * k,)
        cover = (shapes or {}).get(obj.shape, _coverage)
        inside = cover(obj, size, ys, xs)  # (H * k, W * k)
        alpha = inside.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))[..., None]  # (H, W, 1)
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = alpha * np.asarray(palette[obj.color]) + (1 - alpha) * region
    return np.rint(canvas).astype(np.uint8)
