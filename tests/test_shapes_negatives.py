"""Hard negatives: each false of its scene by the judge, one fact away, seen pairs only."""

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from atelier.data.hard_negatives import WithNegatives
from atelier.data.shapes import ShapesDataset
from atelier.shapes.caption import caption, caption_spec, phrase
from atelier.shapes.judge import judge
from atelier.shapes.negatives import KINDS, change, hard_negatives, holds
from atelier.shapes.parse import parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import realize, sample_scene
from atelier.shapes.world import ObjectSpec, SceneSpec


def test_caption_is_the_phrase_of_its_spec():
    # caption() = phrase(caption_spec()) drawing the same numbers: training captions unchanged.
    for seed in range(30):
        scene = sample_scene(np.random.default_rng([7, seed]), split="train")
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert caption(scene, a) == phrase(caption_spec(scene, b), b)


def test_every_negative_fails_the_judge_on_its_scene_and_the_caption_passes():
    data = ShapesDataset(60, resolution=64)
    kinds = Counter()
    for i in range(60):
        pixels, text, _ = data.example(i)
        assert judge(pixels, parse_prompt(text)).passed
        for negative, kind in data.hard_negatives(i, 3):
            kinds[kind] += 1
            spec = parse_prompt(negative)  # written in the world's language
            assert not judge(pixels, spec).passed, (text, negative, kind)
            assert not spec.held_out  # a train-split model never reads held-out pairs
    assert set(kinds) == set(KINDS), kinds  # every kind of change occurs


def test_a_recolour_changes_one_word_and_keeps_the_order():
    data = ShapesDataset(200, resolution=64)
    checked = 0
    for i in range(200):
        _, text, _ = data.example(i)
        for negative, kind in data.hard_negatives(i, 4):
            words = set(text.split()) | set(negative.split())
            # Same structure (no corner draws, no grouped counts): the same phrasing draws.
            if kind in ("recolor", "reshape") and not words & {"corner", "two", "three", "four"}:
                a, b = text.split(), negative.split()
                assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
                checked += 1
    assert checked >= 20


def test_same_item_same_negatives_and_bad_k():
    a, b = ShapesDataset(5, resolution=32), ShapesDataset(5, resolution=64)
    assert a.hard_negatives(3, 4) == b.hard_negatives(3, 4)  # a pure function of (seed, index)
    assert a.hard_negatives(3, 0) == []
    with pytest.raises(ValueError, match="at least 0"):
        a.hard_negatives(0, -1)


def test_changes_that_leave_a_spec_true_are_rejected():
    scene = sample_scene(np.random.default_rng(0), split="train")
    assert holds(scene.spec(), scene)
    # Swapping the colours of two uncelled circles leaves the spec true of its scene; no such
    # "negative" may come out, and every one that does is false by the judge on the render.
    twin = SceneSpec((ObjectSpec("red", "circle"), ObjectSpec("blue", "circle")))
    swapped = change(twin, "swap_colors", np.random.default_rng(0))
    twin_scene = realize(twin, np.random.default_rng(1))
    assert holds(swapped, twin_scene)
    state = np.random.default_rng(2).bit_generator.state
    negatives = hard_negatives(twin_scene, twin, state, 40, np.random.default_rng(3))
    pixels = render(twin_scene, 64)
    for text, _ in negatives:
        assert not judge(pixels, parse_prompt(text)).passed, text
    assert change(SceneSpec((ObjectSpec("red", "circle"),)), "swap_colors",
                  np.random.default_rng(0)) is None  # fmt: skip
    with pytest.raises(ValueError, match="unknown kind"):
        change(twin, "blur", np.random.default_rng(0))


def test_with_negatives_collates_one_list_per_negative():
    items = [(torch.full((1,), float(i)), f"c{i}") for i in range(4)]
    data = WithNegatives(items, [[f"n{i}a", f"n{i}b"] for i in range(4)])
    x, captions, negatives = next(iter(DataLoader(data, batch_size=4)))
    assert list(captions) == ["c0", "c1", "c2", "c3"]
    assert [list(v) for v in negatives] == [[f"n{i}a" for i in range(4)],
                                            [f"n{i}b" for i in range(4)]]  # fmt: skip
    assert data.captions == ["c0", "c1", "c2", "c3"]
    with pytest.raises(ValueError, match="same number"):
        WithNegatives(items, [["a"], ["b"], ["c"], []])


def test_focus_draws_binding_kinds_first_and_still_only_false_captions():
    data = ShapesDataset(120, resolution=64)
    plain, focused = Counter(), Counter()
    for i in range(120):
        pixels, _, _ = data.example(i)
        # No focus: the same negatives as before the option existed (no extra draws).
        assert data.hard_negatives(i, 4) == data.hard_negatives(i, 4, focus=("swap_colors",),
                                                                focus_p=0.0)  # fmt: skip
        plain.update(kind for _, kind in data.hard_negatives(i, 4))
        for negative, kind in data.hard_negatives(i, 4, focus=("swap_colors",), focus_p=1.0):
            focused[kind] += 1
            assert not judge(pixels, parse_prompt(negative)).passed
    # Every scene with two differently coloured objects gives only swaps; others fall back.
    assert focused["swap_colors"] > 3 * plain["swap_colors"]
    assert sum(focused.values()) == sum(plain.values()) == 480


def test_focus_is_validated():
    data = ShapesDataset(2, resolution=32)
    with pytest.raises(ValueError, match="unknown kind of change 'swap'"):
        data.hard_negatives(0, 1, focus=("swap",), focus_p=0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        data.hard_negatives(0, 1, focus=("relation",), focus_p=1.5)
