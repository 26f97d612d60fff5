"""Captions are complete, true and varied; the parser reads every caption and names bad words."""

import re

import numpy as np
import pytest

from atelier.shapes.caption import caption, phrase
from atelier.shapes.judge import judge
from atelier.shapes.parse import PromptError, UnknownWordError, parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import sample_scene
from atelier.shapes.world import ObjectSpec, Relation, SceneSpec


def test_every_caption_parses_to_a_spec_its_own_render_passes():
    rng = np.random.default_rng(0)
    for _ in range(600):
        scene = sample_scene(rng)
        text = caption(scene, rng)
        spec = parse_prompt(text)
        assert len(spec.objects) == len(scene.objects), text  # complete: every object named
        verdict = judge(render(scene, 64), spec)
        assert verdict.passed, (text, verdict.reasons)  # true: every stated fact holds


def test_captions_are_varied():
    rng = np.random.default_rng(1)
    texts = [caption(sample_scene(rng), rng) for _ in range(800)]

    def share(pattern: str) -> float:
        return np.mean([bool(re.search(pattern, t)) for t in texts])

    assert 0.4 < share(r"^(a|an) ") < 0.95  # article or not
    assert 0.2 < share(r"\b(in|at|on) the (top|bottom|left|right|center)") < 0.8  # positions
    assert 0.2 < share(r"\b(small|large)\b") < 0.8  # sizes
    assert 0.1 < share(r"\b(left of|right of|above|below|over|under)\b") < 0.5  # relations
    assert share(r"\b(two|three|four) \w+ ?\w* \w+s\b") > 0.05  # counts with plurals
    assert share(r"^(a picture of|an image of|a drawing of|an image with|there is)") > 0.05
    assert len(set(texts)) > 0.9 * len(texts)


def test_several_phrasings_of_one_scene():
    scene = sample_scene(np.random.default_rng(5), n_objects=3, p_repeat=0.0)
    texts = {caption(scene, np.random.default_rng(i)) for i in range(40)}
    assert len(texts) >= 15
    for text in texts:
        assert judge(render(scene, 64), parse_prompt(text)).passed, text


@pytest.mark.parametrize(
    "prompt,expected",
    [
        ("a red circle", SceneSpec((ObjectSpec("red", "circle"),))),
        ("Three green triangles.", SceneSpec((ObjectSpec("green", "triangle"),) * 3)),
        (
            "a small purple circle in the top-left corner",
            SceneSpec((ObjectSpec("purple", "circle", "small", (0, 0)),)),
        ),
        (
            "a red circle to the left of a blue square",
            SceneSpec(
                (ObjectSpec("red", "circle"), ObjectSpec("blue", "square")),
                (Relation(0, "left_of", 1),),
            ),
        ),
        (
            "an image of two large red squares and a cyan circle on the right",
            SceneSpec(
                (ObjectSpec("red", "square", "large"),) * 2
                + (ObjectSpec("cyan", "circle", cell=(1, 2)),)
            ),
        ),
        (
            "blue triangle under yellow circle, red square, and green circle at the bottom",
            SceneSpec(
                (
                    ObjectSpec("blue", "triangle"),
                    ObjectSpec("yellow", "circle"),
                    ObjectSpec("red", "square"),
                    ObjectSpec("green", "circle", cell=(2, 1)),
                ),
                (Relation(0, "below", 1),),
            ),
        ),
        (
            "a red circle on the left of a blue square",
            SceneSpec(
                (ObjectSpec("red", "circle"), ObjectSpec("blue", "square")),
                (Relation(0, "left_of", 1),),
            ),
        ),
    ],
)
def test_parse_known_forms(prompt, expected):
    assert parse_prompt(prompt) == expected


@pytest.mark.parametrize(
    "prompt,word",
    [
        ("a red hexagon", "hexagon"),
        ("five red circles", "five"),
        ("a magenta square", "magenta"),
        ("a red circle behind a blue square", "behind"),
    ],
)
def test_unknown_word_is_named(prompt, word):
    with pytest.raises(UnknownWordError) as err:
        parse_prompt(prompt)
    assert err.value.word == word and repr(word) in str(err.value)


@pytest.mark.parametrize(
    "prompt,message",
    [
        ("", "empty"),
        ("a red", "shape"),
        ("a circle", "colour"),
        ("four red circles and a blue square", "1 to 4"),
        ("two red circles in the top left", "position"),
        ("a red circle in the top left and a blue square in the top left", "same cell"),
        ("a red circle a blue square", "'and'"),
    ],
)
def test_malformed_prompts_get_clear_errors(prompt, message):
    with pytest.raises(PromptError, match=message):
        parse_prompt(prompt)


def test_plain_phrase_round_trips_specs():
    rng = np.random.default_rng(3)
    for _ in range(300):
        spec = sample_scene(rng, split="any").spec(
            with_sizes=bool(rng.integers(2)), with_cells=bool(rng.integers(2))
        )
        assert sorted(map(repr, parse_prompt(phrase(spec, rng, plain=True)).objects)) == sorted(
            map(repr, spec.objects)
        )
