"""The renderer and scene sampler follow SHAPES_WORLD.md to the letter."""

import itertools

import numpy as np
import pytest

from atelier.shapes.render import render
from atelier.shapes.scene import realize, sample_scene
from atelier.shapes.world import (
    CELL_CENTERS,
    HELD_OUT,
    MAX_JITTER,
    MIN_GAP,
    PALETTE,
    SIZE_RANGES,
    ObjectSpec,
    PlacedObject,
    Relation,
    Scene,
    SceneSpec,
)


def one(shape: str, side: float = 0.3, color: str = "red") -> Scene:
    return Scene((PlacedObject(color, shape, (1, 1), side, 0.5, 0.5),))


@pytest.mark.parametrize("size", [32, 64, 128])
def test_background_white_and_exact_palette_inside(size):
    rng = np.random.default_rng(size)
    for _ in range(20):
        scene = sample_scene(rng, split="any")
        px = render(scene, size)
        assert px.shape == (size, size, 3) and px.dtype == np.uint8
        ys, xs = np.mgrid[0:size, 0:size] + 0.5
        outside = np.ones((size, size), bool)
        for o in scene.objects:
            reach = (o.side / 2) * size + 1
            outside &= (abs(xs - o.cx * size) > reach) | (abs(ys - o.cy * size) > reach)
        assert (px[outside] == 255).all()  # no marks outside the objects
        for o in scene.objects:
            # The centre of every shape (a triangle's centroid) is its exact palette colour.
            y = int((o.cy + (o.side / 6 if o.shape == "triangle" else 0)) * size)
            assert tuple(px[y, int(o.cx * size)]) == PALETTE[o.color]
        colours = {tuple(c) for c in px.reshape(-1, 3)}
        pure = {PALETTE[o.color] for o in scene.objects} | {(255, 255, 255)}
        # Anything else is an anti-aliased blend of one palette colour with white.
        for c in colours - pure:
            c = np.asarray(c, float)
            fits = []
            for o in scene.objects:
                d = np.asarray(PALETTE[o.color], float) - 255
                a = np.clip((c - 255) @ d / (d @ d), 0, 1)
                fits.append(np.abs(c - 255 - a * d).max())
            assert min(fits) <= 1.0


@pytest.mark.parametrize("shape,ratio", [("square", 1.0), ("circle", np.pi / 4), ("triangle", 0.5)])
def test_shape_areas_and_extents(shape, ratio):
    size, side = 128, 0.3
    px = render(one(shape, side), size)
    coverage = (255 - px[..., 1].astype(float)) / (255 - PALETTE["red"][1])  # (S, S) in [0, 1]
    area = coverage.sum() / size**2
    assert area == pytest.approx(ratio * side**2, rel=0.01)
    cols = np.nonzero(coverage.max(0) > 0.5)[0]
    rows = np.nonzero(coverage.max(1) > 0.5)[0]
    assert (cols[-1] - cols[0] + 1) / size == pytest.approx(side, abs=1.5 / size)
    assert (rows[-1] - rows[0] + 1) / size == pytest.approx(side, abs=1.5 / size)
    if shape == "triangle":  # apex up: the top row is narrow, the bottom row is the full base
        top, bottom = coverage[rows[0] + 1], coverage[rows[-1] - 1]
        assert top.sum() < 0.2 * bottom.sum()


def test_renderer_rejects_unknown_size():
    with pytest.raises(ValueError, match="32, 64, 128"):
        render(one("circle"), 48)


def test_scene_geometry_is_legal():
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(2000):
        scene = sample_scene(rng, split="any")
        counts.add(len(scene.objects))
        cells = [o.cell for o in scene.objects]
        assert len(set(cells)) == len(cells)
        for o in scene.objects:
            lo, hi = SIZE_RANGES[o.size]
            assert lo <= o.side <= hi
            assert abs(o.cx - CELL_CENTERS[o.cell[1]]) <= MAX_JITTER
            assert abs(o.cy - CELL_CENTERS[o.cell[0]]) <= MAX_JITTER
            assert o.cx - o.side / 2 >= 0 and o.cx + o.side / 2 <= 1
        for a, b in itertools.combinations(scene.objects, 2):
            gap = max(abs(a.cx - b.cx), abs(a.cy - b.cy)) - (a.side + b.side) / 2
            assert gap >= MIN_GAP - 1e-12
    assert counts == {1, 2, 3, 4}


def test_train_split_never_emits_held_out_pairs():
    rng = np.random.default_rng(1)
    seen_pairs = set()
    for _ in range(3000):
        for o in sample_scene(rng, split="train").objects:
            seen_pairs.add((o.color, o.shape))
    assert not seen_pairs & HELD_OUT
    assert len(seen_pairs) == 15
    any_pairs = {
        (o.color, o.shape) for _ in range(3000) for o in sample_scene(rng, split="any").objects
    }
    assert HELD_OUT <= any_pairs


def test_realize_honours_cells_sizes_and_relations():
    rng = np.random.default_rng(2)
    spec = SceneSpec(
        (
            ObjectSpec("red", "circle", "small", (0, 0)),
            ObjectSpec("blue", "square", "large"),
            ObjectSpec("green", "triangle"),
        ),
        (Relation(1, "below", 2), Relation(2, "right_of", 0)),
    )
    for _ in range(50):
        scene = realize(spec, rng)
        red, blue, green = scene.objects
        assert red.cell == (0, 0) and red.size == "small" and blue.size == "large"
        assert blue.cell[0] > green.cell[0] and green.cell[1] > red.cell[1]


def test_realize_rejects_impossible_spec():
    spec = SceneSpec(
        (ObjectSpec("red", "circle", cell=(1, 0)), ObjectSpec("blue", "square")),
        (Relation(0, "right_of", 1),),
    )
    # The red circle sits in column 0, so nothing can be to its left.
    with pytest.raises(ValueError, match="no layout"):
        realize(spec, np.random.default_rng(0))
