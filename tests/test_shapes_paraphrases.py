"""Paraphrases are read into the world's meaning; what was read before reads as before."""

import json
from pathlib import Path

import numpy as np
import pytest

from atelier.shapes.bench import load_suite
from atelier.shapes.caption import caption, phrase
from atelier.shapes.judge import judge
from atelier.shapes.negatives import change, holds
from atelier.shapes.parse import PromptError, UnknownWordError, parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import place, realize, sample_scene
from atelier.shapes.world import ObjectSpec, Relation, Scene, SceneSpec, relation_holds

SNAPSHOT = json.loads((Path(__file__).parent / "data" / "shapes_parse_snapshot.json").read_text())

RED_CIRCLE, BLUE_SQUARE = ObjectSpec("red", "circle"), ObjectSpec("blue", "square")


def _related(name: str) -> SceneSpec:
    return SceneSpec((RED_CIRCLE, BLUE_SQUARE), (Relation(0, name, 1),))


def test_every_bench_prompt_reads_as_before():
    suite = load_suite()
    assert [bp.prompt for bp in suite] == [prompt for prompt, _ in SNAPSHOT["bench"]]
    for prompt, spec in SNAPSHOT["bench"]:
        assert parse_prompt(prompt) == SceneSpec.from_dict(spec), prompt


def test_every_dataset_caption_is_written_and_read_as_before():
    # Seeds as `atelier shapes dataset --seed 0 --split train` and `--seed 1 --split any` draw.
    for split, i, text, spec in SNAPSHOT["captions"]:
        rng = np.random.default_rng([0 if split == "train" else 1, i])
        assert caption(sample_scene(rng, split=split), rng) == text
        assert parse_prompt(text) == SceneSpec.from_dict(spec), text


@pytest.mark.parametrize(
    "prompt,expected",
    [
        ("a single blue triangle", SceneSpec((ObjectSpec("blue", "triangle"),))),
        ("single blue triangle", SceneSpec((ObjectSpec("blue", "triangle"),))),
        ("one single blue triangle", SceneSpec((ObjectSpec("blue", "triangle"),))),
        ("exactly one small red circle", SceneSpec((ObjectSpec("red", "circle", "small"),))),
        ("exactly three purple squares", SceneSpec((ObjectSpec("purple", "square"),) * 3)),
        ("3 purple squares", SceneSpec((ObjectSpec("purple", "square"),) * 3)),
        ("exactly 4 green discs", SceneSpec((ObjectSpec("green", "circle"),) * 4)),
        ("1 red circle in the top left", SceneSpec((ObjectSpec("red", "circle", cell=(0, 0)),))),
        (
            "a pair of large yellow triangles",
            SceneSpec((ObjectSpec("yellow", "triangle", "large"),) * 2),
        ),
        (
            "a pair of red circles and a single blue square",
            SceneSpec((RED_CIRCLE, RED_CIRCLE, BLUE_SQUARE)),
        ),
        ("a red circle next to a blue square", _related("beside")),
        ("A red circle beside a blue square.", _related("beside")),
        ("a red circle underneath a blue square", _related("below")),
        ("a red circle on top of a blue square", _related("above")),
        ("a red circle on the left side of a blue square", _related("left_of")),
        ("a red circle to the left side of a blue square", _related("left_of")),
        ("a red circle on the right side of a blue square", _related("right_of")),
        ("a red circle to the right side of a blue square", _related("right_of")),
        (
            "a red circle beside a blue square in the top left",
            SceneSpec(
                (RED_CIRCLE, ObjectSpec("blue", "square", cell=(0, 0))),
                (Relation(0, "beside", 1),),
            ),
        ),
        (
            "a single red circle on the left side",  # a position, not a relation
            SceneSpec((ObjectSpec("red", "circle", cell=(1, 0)),)),
        ),
    ],
)
def test_paraphrase_meanings(prompt, expected):
    assert parse_prompt(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "a single blue triangle",
        "exactly three purple squares",
        "a pair of red circles and a green triangle",
        "a cyan triangle next to a red square",
        "a red circle underneath a blue square",
        "a small green square on the right side of a large yellow circle",
    ],
)
def test_paraphrases_render_and_pass_the_judge(prompt):
    spec = parse_prompt(prompt)
    for seed in range(3):
        verdict = judge(render(realize(spec, np.random.default_rng(seed)), 64), spec)
        assert verdict.passed, (prompt, seed, verdict.reasons)


def test_beside_is_left_of_or_right_of():
    for a in [(r, c) for r in range(3) for c in range(3)]:
        for b in [(r, c) for r in range(3) for c in range(3)]:
            either = relation_holds("left_of", a, b) or relation_holds("right_of", a, b)
            assert relation_holds("beside", a, b) == either


def test_beside_renders_either_side_and_the_judge_refuses_one_column():
    spec = parse_prompt("a cyan triangle next to a red square")
    sides = set()
    for seed in range(40):
        triangle, square = realize(spec, np.random.default_rng(seed)).objects
        sides.add("left" if triangle.cell[1] < square.cell[1] else "right")
    assert sides == {"left", "right"}  # no side is preferred: "next to" names none
    stacked = Scene(
        place(
            [("cyan", "triangle", "small", (0, 1)), ("red", "square", "small", (2, 1))],
            np.random.default_rng(0),
        )
    )
    verdict = judge(render(stacked, 64), spec)
    assert not verdict.passed
    assert verdict.reasons == ["the cyan triangle is not beside the red square"]


def test_beside_phrases_and_reads_back():
    spec = _related("beside")
    for seed in range(10):
        text = phrase(spec, np.random.default_rng(seed))
        assert parse_prompt(text) == spec, text
    assert phrase(spec, np.random.default_rng(0), plain=True) == (
        "a red circle next to a blue square"
    )


def test_beside_has_no_opposite_negative():
    spec = _related("beside")
    assert change(spec, "relation", np.random.default_rng(0)) is None
    scene = realize(spec, np.random.default_rng(0))
    assert holds(spec, scene)


@pytest.mark.parametrize(
    "prompt,word",
    [
        ("a red hexagon", "hexagon"),
        ("5 red circles", "5"),
        ("12 red circles", "12"),
        ("a couple of red circles", "couple"),
        ("several red circles", "several"),
        ("a red circle behind a blue square", "behind"),
        ("a red circle in front of a blue square", "front"),
        ("a red circle near a blue square", "near"),
        ("a red circle directly above a blue square", "directly"),
    ],
)
def test_words_outside_the_world_are_named(prompt, word):
    with pytest.raises(UnknownWordError) as err:
        parse_prompt(prompt)
    assert err.value.word == word and repr(word) in str(err.value)


@pytest.mark.parametrize(
    "prompt,message",
    [
        ("exactly a red circle", "a count \\(one to four\\) after 'exactly'"),
        ("exactly red circles", "a count"),
        ("a pair of red circles in the top left", "position is given to 2 objects"),
        ("two red circles next to a blue square", "relation joins single objects"),
        ("a pair of red circles and three blue squares", "1 to 4"),
        ("a red circle next a blue square", "',' or 'and'"),
    ],
)
def test_malformed_paraphrases_get_clear_errors(prompt, message):
    with pytest.raises(PromptError, match=message):
        parse_prompt(prompt)
