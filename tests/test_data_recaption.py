"""Several captions per scene: each one true of its scene, one drawn per sample."""

import pytest
import torch
from torch.utils.data import DataLoader

from atelier.data.recaption import Recaptioned, choose_captions
from atelier.data.shapes import ShapesDataset
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt


def test_variants_are_true_of_their_scene_and_keep_the_first_caption():
    data = ShapesDataset(12, resolution=64)
    differ = 0
    for i in range(12):
        pixels, first, _ = data.example(i)
        variants = data.caption_variants(i, 4)
        assert variants[0] == first and len(variants) == 4
        for text in variants:
            # Every variant names exactly the scene's objects and states only true facts.
            assert judge(pixels, parse_prompt(text)).passed, text
        differ += len(set(variants)) > 1
    assert differ >= 10
    with pytest.raises(ValueError, match="at least 1"):
        data.caption_variants(0, 0)


def test_plain_captions_pass_through_without_drawing():
    state = torch.get_rng_state()
    assert choose_captions(["a", "b"]) == ["a", "b"]
    assert torch.equal(torch.get_rng_state(), state)  # k = 1 runs draw nothing extra


def test_each_sample_gets_one_of_its_own_variants_and_all_get_used():
    items = [(torch.full((1,), float(i)), str(i)) for i in range(8)]
    variants = [[f"{i}-{j}" for j in range(3)] for i in range(8)]
    data = Recaptioned(items, variants)
    assert data.captions == [t for v in variants for t in v]
    torch.manual_seed(0)
    drawn = []
    for x, captions in DataLoader(data, batch_size=4):
        chosen = choose_captions(captions)
        assert [c.split("-")[0] for c in chosen] == [str(int(v)) for v in x[:, 0].tolist()]
        drawn += chosen
    for _ in range(20):
        for _, captions in DataLoader(data, batch_size=4):
            drawn += choose_captions(captions)
    assert set(drawn) == set(data.captions)
    # The draw comes from the global generator: the same seed gives the same captions.
    batch = next(iter(DataLoader(data, batch_size=8)))[1]
    torch.manual_seed(5)
    a = choose_captions(batch)
    torch.manual_seed(5)
    assert choose_captions(batch) == a


def test_mismatched_caption_lists_are_refused():
    items = [(torch.zeros(1), "a")] * 3
    with pytest.raises(ValueError, match="2 lists of captions for 3 items"):
        Recaptioned(items, [["a"], ["b"]])
    with pytest.raises(ValueError, match="same number"):
        Recaptioned(items, [["a"], ["b", "c"], ["d"]])


def test_recipe_refuses_zero_captions():
    from atelier.training.recipe import RecipeData

    with pytest.raises(ValueError, match="captions_per_image"):
        RecipeData(captions_per_image=0)
