"""The judge finds objects in any RGB image and fails anything short of an exact match."""

import io

import numpy as np
import pytest
from PIL import Image

from atelier.shapes.judge import detect, judge
from atelier.shapes.parse import parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import realize
from atelier.shapes.world import PlacedObject, Scene


def scene(*objects) -> Scene:
    return Scene(
        tuple(
            PlacedObject(c, s, cell, side, (cell[1] * 2 + 1) / 6, (cell[0] * 2 + 1) / 6)
            for c, s, cell, side in objects
        )
    )


RED_TL = ("red", "circle", (0, 0), 0.28)
BLUE_BR = ("blue", "square", (2, 2), 0.16)


def test_detects_colour_shape_size_cell():
    found = detect(render(scene(RED_TL, BLUE_BR, ("purple", "triangle", (1, 1), 0.3)), 64))
    assert [(o.color, o.shape, o.size, o.cell) for o in found] == [
        ("red", "circle", "large", (0, 0)),
        ("purple", "triangle", "large", (1, 1)),
        ("blue", "square", "small", (2, 2)),
    ]


@pytest.mark.parametrize(
    "prompt,passes",
    [
        ("a red circle and a blue square", True),
        ("a large red circle in the top left and a small blue square in the bottom right", True),
        ("a red circle above a blue square", True),
        ("a red circle left of a blue square", True),
        ("a blue square above a red circle", False),  # relation reversed
        ("a red circle", False),  # extra object
        ("a red circle, a blue square and a green triangle", False),  # missing object
        ("a blue circle and a red square", False),  # colours bound to the wrong shapes
        ("a small red circle and a blue square", False),  # wrong size
        ("a red circle in the top right and a blue square", False),  # wrong position
        ("two red circles and a blue square", False),  # wrong count
    ],
)
def test_scoring_is_strict(prompt, passes):
    verdict = judge(render(scene(RED_TL, BLUE_BR), 64), parse_prompt(prompt))
    assert verdict.passed is passes, verdict.reasons
    assert bool(verdict.reasons) is not passes


def test_reasons_name_the_problem():
    verdict = judge(
        render(scene(RED_TL, BLUE_BR), 64),
        parse_prompt("a small red circle in the top right and a blue square"),
    )
    assert "the red circle is large, asked small" in verdict.reasons
    assert "the red circle is in the top left, asked top right" in verdict.reasons


def test_foreign_marks_and_blank_images_fail():
    px = render(scene(RED_TL), 64)
    assert judge(px, parse_prompt("a red circle")).passed
    marked = px.copy()
    marked[40:52, 40:52] = (0, 0, 0)  # a black blot is no world object
    verdict = judge(marked, parse_prompt("a red circle"))
    assert not verdict.passed and any("foreign" in r for r in verdict.reasons)
    blank = np.full((64, 64, 3), 255, np.uint8)
    assert not judge(blank, parse_prompt("a red circle")).passed
    assert detect(blank) == []


def test_wrong_geometry_is_not_a_world_shape():
    px = np.full((64, 64, 3), 255, np.uint8)
    px[20:44, 10:54] = (220, 40, 40)  # a 2:1 red rectangle
    assert [o.shape for o in detect(px)] == ["unknown"]
    flipped = render(scene(("red", "triangle", (1, 1), 0.3)), 64)[::-1]  # apex down
    assert [o.shape for o in detect(np.ascontiguousarray(flipped))] == ["unknown"]
    giant = render(scene(("red", "square", (1, 1), 0.3)), 128)
    big = np.asarray(
        Image.fromarray(giant).resize((64, 64)).crop((16, 16, 48, 48)).resize((64, 64))
    )
    assert detect(big)[0].size == "off-scale"


def test_any_rgb_image_size_and_mode():
    spec = parse_prompt("a red circle in the top left and a small blue square in the bottom right")
    px = render(scene(RED_TL, BLUE_BR), 128)
    img = Image.fromarray(px)
    assert judge(img.resize((100, 100), Image.BICUBIC), spec).passed  # an unusual size
    assert judge(img.convert("RGBA"), spec).passed  # alpha composited over white
    assert judge(img.convert("P", palette=Image.ADAPTIVE, colors=64), spec).passed
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    jpeg = Image.open(io.BytesIO(buf.getvalue()))
    assert judge(jpeg, spec).passed  # compression artefacts
    with pytest.raises(ValueError, match="RGB"):
        judge(px[..., 0], spec)


def test_renders_of_random_specs_pass_at_32px():
    rng = np.random.default_rng(0)
    prompts = [
        "three green triangles",
        "a small cyan circle above a large purple triangle",
        "a yellow square on the left, a red circle and a blue triangle in the bottom right",
    ]
    for prompt in prompts:
        spec = parse_prompt(prompt)
        for _ in range(20):
            assert judge(render(realize(spec, rng), 32), spec).passed
