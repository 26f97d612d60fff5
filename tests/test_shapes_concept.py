"""The concept set (a large cross named by a rare token): the extended judge reads its renders,
the suite asks only for what training never showed, and bad tokens are refused."""

import numpy as np
import pytest

from atelier.shapes.concept import (
    CONCEPT_SHAPE,
    TEST_CELLS,
    TEST_COLORS,
    TRAIN_CELLS,
    TRAIN_COLORS,
    Wanted,
    concept_suite,
    detect_concept,
    judge_concept,
    render_concept,
    training_scenes,
)
from atelier.shapes.judge import detect
from atelier.shapes.scene import place
from atelier.shapes.world import Scene


def test_training_scenes_are_read_back_exactly():
    scenes = training_scenes(20, token="sks")
    for scene, caption in scenes:
        found = detect_concept(render_concept(scene, 64))
        assert sorted((o.color, o.shape) for o in found) == sorted(
            (o.color, o.shape) for o in scene.objects
        )
        crosses = [o for o in scene.objects if o.shape == CONCEPT_SHAPE]
        assert len(crosses) == 1 and crosses[0].color in TRAIN_COLORS
        assert crosses[0].cell in TRAIN_CELLS and "sks" in caption.split()


def test_the_world_judge_does_not_take_a_cross_for_a_world_shape():
    scene, _ = training_scenes(5, token="sks")[0]
    assert [o.shape for o in detect(render_concept(scene, 64))] == ["unknown"]


def test_the_suite_asks_for_unseen_colours_and_cells_and_passes_true_renders():
    suite = concept_suite("sks")
    assert len(suite) == 24
    rng = np.random.default_rng(0)
    for prompt in suite:
        cross = prompt.spec.objects[0]
        assert cross.shape == CONCEPT_SHAPE and cross.color in TEST_COLORS
        assert cross.cell is None or cross.cell in TEST_CELLS
        free = [c for c in TEST_CELLS if c != cross.cell]
        items = [(o.color, o.shape, "large", o.cell or free[k])
                 for k, o in enumerate(prompt.spec.objects)]  # fmt: skip
        image = render_concept(Scene(place(items, rng)), 64)
        assert judge_concept(image, prompt).passed, prompt.prompt


def test_a_missing_cross_fails():
    prompt = concept_suite("sks")[0]
    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    assert not judge_concept(blank, prompt).passed
    assert Wanted("red", "cross").size is None


@pytest.mark.parametrize("token", ["red", "Sks", "two words", "cross", ""])
def test_bad_tokens_are_refused(token):
    with pytest.raises(ValueError, match="token"):
        training_scenes(8, token=token)
