"""Inpainting and outpainting with the token models: kept tokens are the source's codes and stay
so through decoding, pixels outside the mask are the source's exactly, a batch equals single
runs, a full mask is text-to-image, and sizes the fixed grid cannot take are refused naming the
fix."""

import numpy as np
import pytest
import torch
from PIL import Image

from atelier.data.base import array_to_tensor
from atelier.pipelines.masks import prepare_mask
from atelier.pipelines.token2image import AutoregressivePipeline
from atelier.pipelines.token_editing import TokenEditor
from tests.pipelines.token_models import tiny_token_model

KINDS = ["dalle", "maskgit"]


def scene(side: int = 16) -> Image.Image:
    image = Image.new("RGB", (side, side), (255, 255, 255))
    image.paste((220, 30, 30), (2, 2, 9, 9))
    image.paste((30, 30, 220), (9, 8, 15, 15))
    return image


def mask_from(x0: int, y0: int, x1: int, y1: int, side: int = 16) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, (x0, y0, x1, y1))
    return mask


@pytest.fixture(scope="module", params=KINDS)
def model(request):
    return tiny_token_model(request.param)


def test_kept_tokens_are_the_sources_and_pixels_outside_the_mask_are_too(model):
    editor = TokenEditor(model.pipeline())
    source = scene()
    # x from 6: not a multiple of f = 4, so token column 1 (pixels 4..7) is cut and repainted.
    mask = mask_from(6, 0, 16, 16)
    repaint = prepare_mask(mask, source)
    known, keep = editor.known_tokens([source], [repaint])
    assert keep[0].tolist() == [[True, False, False, False]] * 4
    assert torch.equal(known, model.pipeline().encode(array_to_tensor(np.asarray(source))[None]))
    codes = editor.pipe.sample(["a red circle"], seeds=[3], options=model.defaults, known=known,
                               keep=keep)  # fmt: skip
    assert torch.equal(codes[keep], known[keep])
    assert not torch.equal(codes[~keep], known[~keep])
    for grow, feather in ((0, 0.0), (1, 1.5)):
        (out,) = editor.inpaint([source], [mask], ["a red circle"], seeds=[3], grow=grow,
                                feather=feather, options=model.defaults)  # fmt: skip
        outside = prepare_mask(mask, source, grow=grow, feather=feather) == 0
        assert outside.sum() >= 16  # at least a column
        np.testing.assert_array_equal(np.asarray(out)[outside], np.asarray(source)[outside])
        assert not np.array_equal(np.asarray(out), np.asarray(source))


def test_masked_decoding_never_changes_a_known_token():
    model = tiny_token_model("maskgit")
    editor = TokenEditor(model.pipeline())
    source = scene()
    for mask in (mask_from(0, 0, 8, 16), mask_from(12, 12, 16, 16)):  # half, then one token
        known, keep = editor.known_tokens([source], [prepare_mask(mask, source)])
        steps = []
        codes = editor.pipe.sample(["a blue square"], seeds=[1], options=model.defaults,
                                   callback=steps.append, known=known, keep=keep)  # fmt: skip
        assert len(steps) == model.defaults.steps
        for step in steps:
            assert torch.equal(step.tokens[:1].view(1, 4, 4)[keep], known[keep])
        assert (codes < model.network.mask_id).all()
    assert int((~keep).sum()) == 1  # the single unknown token was drawn, in the first step
    assert (steps[0].tokens != model.network.mask_id).all()


def test_dalle_inpaints_the_same_with_and_without_its_kv_cache():
    model = tiny_token_model("dalle")
    parts = {"network": model.network, "text_tokenizer": model.text_tokenizer,
             "image_tokenizer": model.tokenizer.tokenizer}  # fmt: skip
    masks = [mask_from(0, 4, 16, 12), mask_from(4, 0, 8, 16)]
    images = [
        TokenEditor(AutoregressivePipeline(use_cache=cached, **parts)).inpaint(
            [scene()] * 2, masks, ["a red circle"] * 2, seeds=[1, 2], options=model.defaults)
        for cached in (True, False)
    ]  # fmt: skip
    for cached, uncached in zip(*images):
        np.testing.assert_array_equal(np.asarray(cached), np.asarray(uncached))


def test_a_batch_equals_single_runs_and_a_seed_repeats(model):
    editor = TokenEditor(model.pipeline())
    source = scene()
    # Five edits cross a chunk boundary of the DALL-E pipeline's four rows.
    masks = [mask_from(0, 0, 8, 16), mask_from(8, 0, 16, 16), mask_from(0, 8, 16, 16),
             mask_from(4, 4, 12, 12), mask_from(0, 0, 16, 4)]  # fmt: skip
    prompts = ["a red circle", "a blue square", "", "three yellow circles", "a red circle"]
    seeds = [5, 6, 7, 8, 9]
    batch = editor.inpaint([source] * 5, masks, prompts, seeds=seeds, options=model.defaults)
    for mask, prompt, seed, image in zip(masks, prompts, seeds, batch):
        (alone,) = editor.inpaint([source], [mask], [prompt], seeds=[seed],
                                  options=model.defaults)  # fmt: skip
        np.testing.assert_array_equal(np.asarray(alone), np.asarray(image))
    (other,) = editor.inpaint([source], masks[:1], prompts[:1], seeds=[6], options=model.defaults)
    assert not np.array_equal(np.asarray(other), np.asarray(batch[0]))
    assert editor.inpaint([], [], [], seeds=[], options=model.defaults) == []


def test_a_full_mask_is_text_to_image_at_the_same_seed(model):
    editor = TokenEditor(model.pipeline())
    (painted,) = editor.inpaint([scene()], [mask_from(0, 0, 16, 16)], ["a red circle"],
                                seeds=[4], options=model.defaults)  # fmt: skip
    (drawn,) = model(["a red circle"], seeds=[4])
    np.testing.assert_array_equal(np.asarray(painted), np.asarray(drawn))


def test_outpainting_keeps_the_image_and_fills_the_canvas(model):
    editor = TokenEditor(model.pipeline())
    source = scene().crop((0, 0, 10, 16))  # 10 px wide: the pad of 6 cuts token column 2
    out = editor.outpaint(source, "a red circle", seed=2, right=6, options=model.defaults)
    assert out.size == (16, 16)
    np.testing.assert_array_equal(np.asarray(out)[:, :10], np.asarray(source))
    again = editor.outpaint(source, "a red circle", seed=2, right=6, options=model.defaults)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(again))
    top = editor.outpaint(scene().crop((0, 0, 16, 12)), "x", seed=0, top=4,
                          options=model.defaults)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(top)[4:], np.asarray(scene())[:12])


@pytest.mark.parametrize(
    "size, pads, message",
    [
        ((12, 16), {"right": 8}, "would be 20x16 but this token model makes 16x16 px images "
         "only (its grid of tokens is fixed): for this 12x16 image, left + right must add up to "
         "4 and top + bottom to 0"),
        ((16, 16), {"left": 4}, "already 16x16, the only size this token model makes"),
        ((20, 12), {"top": 4}, "the image is 20x12, larger than the 16x16 px"),
        ((12, 16), {}, "at least one side to grow"),
    ],
)  # fmt: skip
def test_outpainting_to_another_size_than_the_grid_is_refused_naming_the_padding(
    size, pads, message
):
    model = tiny_token_model("maskgit")
    editor = TokenEditor(model.pipeline())
    with pytest.raises(ValueError) as err:
        editor.outpaint(Image.new("RGB", size), "x", seed=0, options=model.defaults, **pads)
    assert message in str(err.value)


def test_inpainting_another_size_or_an_empty_mask_is_refused():
    model = tiny_token_model("dalle")
    editor = TokenEditor(model.pipeline())
    with pytest.raises(ValueError, match="the image is 32x32 but this token model edits 16x16 px "
                                         "images only .* resize it to 16x16"):  # fmt: skip
        editor.inpaint([scene(32)], [mask_from(0, 0, 8, 8, side=32)], ["x"], seeds=[0],
                       options=model.defaults)  # fmt: skip
    with pytest.raises(ValueError, match="the mask is empty"):
        editor.inpaint([scene()], [mask_from(0, 0, 0, 0)], ["x"], seeds=[0],
                       options=model.defaults)  # fmt: skip
