"""AUTOMATIC1111's AND syntax: parsing, and composed prompts through the pipeline."""

import numpy as np
import pytest

from atelier.diffusion.options import SamplingOptions
from atelier.kinds.registry import load_model
from atelier.pipelines.composable import compose, split_and


@pytest.mark.parametrize(
    ("prompt", "parts"),
    [
        ("a red circle", [("a red circle", 1.0)]),
        ("a red circle and a blue square", [("a red circle and a blue square", 1.0)]),
        ("ratio 3:2", [("ratio 3:2", 1.0)]),  # no AND: read as written
        ("a red circle AND a blue square", [("a red circle", 1.0), ("a blue square", 1.0)]),
        (
            "a red circle :1.5 AND a blue square: .25",
            [("a red circle", 1.5), ("a blue square", 0.25)],
        ),
        ("red AND blue :-0.5 AND ANDROID", [("red", 1.0), ("blue", -0.5), ("ANDROID", 1.0)]),
    ],
)
def test_split_and(prompt, parts):
    assert split_and(prompt) == parts


@pytest.mark.parametrize(
    "prompt", ["AND a red circle", "a red circle AND", "a AND  AND b", "a AND :2"]
)
def test_an_empty_sub_prompt_is_a_clear_error(prompt):
    with pytest.raises(ValueError, match="empty sub-prompt around AND"):
        split_and(prompt)


def test_compose_flattens_sub_prompts_with_their_images():
    texts, composition = compose(["a", "b AND c :2", "d"])
    assert texts == ["a", "b", "c", "d"]
    assert composition.image.tolist() == [0, 1, 1, 2]
    assert composition.weight.tolist() == [1.0, 1.0, 2.0, 1.0] and composition.images == 3
    assert compose(["a", "b"]) == (["a", "b"], None)


def pixels(images):
    return [np.asarray(im) for im in images]


def test_composed_prompts_in_the_pipeline(tiny_model_dir):
    pipe = load_model(tiny_model_dir).pipeline(rows=4)
    options = SamplingOptions(steps=3, guidance=2.5, sampler="euler")
    prompts = [
        "a red circle AND a blue square",
        "a green triangle",
        "a red circle AND a red circle :0",
    ]
    seeds = [3, 4, 5]
    batch = pixels(pipe(prompts, seeds=seeds, options=options))
    # Batch = singles, composed or not.
    for prompt, seed, image in zip(prompts, seeds, batch):
        assert np.array_equal(image, pixels(pipe([prompt], seeds=[seed], options=options))[0])
    # A sub-prompt of weight 0 adds nothing: the image is the plain prompt's, bit for bit.
    plain = pixels(pipe(["a red circle"], seeds=[5], options=options))[0]
    assert np.array_equal(batch[2], plain)
    with pytest.raises(ValueError, match="empty sub-prompt"):
        pipe(["AND a red circle"], seeds=[0], options=options)
