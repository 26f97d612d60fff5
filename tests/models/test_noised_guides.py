"""The noise-aware guides' networks and the prompt-to-cells targets of classifier guidance."""

import itertools

import pytest
import torch

from atelier.models.noised_classifier import (
    CLASSES,
    N_HEADS,
    WIDEST,
    NoisedClassifierConfig,
    NoisedShapesClassifier,
    cell_attribute_targets,
)
from atelier.models.noised_clip import NoisedCLIP, NoisedViTConfig
from atelier.pipelines.layouts import allowed_layouts, batch_chooser, layout_targets
from atelier.shapes.parse import parse_prompt
from atelier.shapes.world import CELLS, ObjectSpec, Relation, SceneSpec, relation_holds
from tests.diffusion.test_clip_guidance import tiny_clip


def test_classifier_logits_pad_narrow_heads_and_depend_on_t():
    torch.manual_seed(0)
    net = NoisedShapesClassifier(
        NoisedClassifierConfig(in_channels=4, image_size=8, channels=(8,), groups=4, hidden=16)
    )
    x = torch.randn(2, 4, 8, 8)
    out = net(x, torch.tensor([0.0, 0.0]))
    assert out.shape == (2, N_HEADS, WIDEST)
    heads = out.view(2, 9, 3, WIDEST)
    for a, k in enumerate(CLASSES):  # colour 7, shape 4, size 3 real classes, the rest -inf
        assert torch.isfinite(heads[:, :, a, :k]).all() and (heads[:, :, a, k:] == -torch.inf).all()
    assert not torch.equal(out, net(x, torch.tensor([0.0, 900.0])))
    torch.testing.assert_close(out[:1], net(x[:1], torch.tensor([0.0])))  # per image
    with pytest.raises(ValueError, match=r"takes \(B, 4, 8, 8\) latents"):
        net(torch.zeros(1, 3, 8, 8), torch.zeros(1))


def test_cell_attribute_targets():
    spec = SceneSpec((ObjectSpec("cyan", "circle", "large", (0, 2)),
                      ObjectSpec("red", "triangle", None, (2, 0))))  # fmt: skip
    t = cell_attribute_targets(spec).view(9, 3)
    assert t[2].tolist() == [4, 1, 2]  # cyan is colour 4 (1-based), circle shape 1, large size 2
    assert t[6].tolist() == [1, 3, -1]  # no size stated: the size head is free
    assert (t[[0, 1, 3, 4, 5, 7, 8]] == 0).all()
    with pytest.raises(ValueError, match="every object's cell"):
        cell_attribute_targets(parse_prompt("a red circle"))


def test_noised_clip_reads_latents_and_t_and_answers_to_the_frozen_text_tower():
    clip = tiny_clip().float()
    noised = NoisedCLIP(NoisedViTConfig(in_channels=4, image_size=8, patch_size=2, width=8,
                                        layers=1, heads=2), clip)  # fmt: skip
    x = torch.randn(3, 4, 8, 8)
    e = noised.encode_image(x, torch.tensor([1.0, 500.0, 999.0]))
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))
    assert not torch.equal(e[0], noised.encode_image(x[:1], torch.tensor([500.0]))[0])
    words = ["a red circle"]
    torch.testing.assert_close(noised.encode_text(words), clip.encode_text(words))
    assert not any(p.requires_grad for p in noised.clip.parameters())
    noised.train()
    assert not noised.clip.training


def test_allowed_layouts_keep_stated_cells_and_relations():
    spec = parse_prompt("a red circle above a blue square")
    layouts = allowed_layouts(spec)
    brute = [c for c in itertools.permutations(range(9), 2)
             if relation_holds("above", CELLS[c[0]], CELLS[c[1]])]  # fmt: skip
    assert sorted(map(tuple, layouts.tolist())) == sorted(brute)
    fixed = allowed_layouts(parse_prompt("a red circle in the top left"))
    assert fixed.tolist() == [[0]]
    with pytest.raises(ValueError, match="no layout"):
        allowed_layouts(SceneSpec(
            (ObjectSpec("red", "circle", cell=(0, 0)), ObjectSpec("red", "square", cell=(0, 1))),
            relations=(Relation(0, "right_of", 1),)))  # fmt: skip


def test_the_chosen_layout_is_the_most_likely_allowed_one():
    spec = parse_prompt("two green triangles")
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(N_HEADS, WIDEST, generator=g, dtype=torch.float64) * 3
    logits.view(9, 3, WIDEST)[:, 1, 4:] = -torch.inf
    logits.view(9, 3, WIDEST)[:, 2, 3:] = -torch.inf
    chosen = layout_targets(spec)(logits)
    lp = logits.log_softmax(-1).view(9, 3, WIDEST)

    def score(cells):  # log p of the layout: the objects' colour and shape, the rest empty
        total = 0.0
        for c in range(9):
            if c in cells:
                total += float(lp[c, 0, 3] + lp[c, 1, 3])  # green = colour 3, triangle = shape 3
            else:
                total += float(lp[c, :, 0].sum())
        return total

    best = max(itertools.permutations(range(9), 2), key=score)
    expected = torch.zeros(9, 3, dtype=torch.long)
    expected[list(best)] = torch.tensor([3, 3, -1])
    assert torch.equal(chosen, expected.flatten())
    both = batch_chooser([spec, parse_prompt("a red circle in the center")])
    out = both(torch.stack([logits, logits]))
    assert torch.equal(out[0], chosen) and out[1].view(9, 3)[4].tolist() == [1, 1, -1]
