"""img2img, variations, inpainting and outpainting on a tiny model, and every bad-input case."""

import numpy as np
import pytest
import torch
from PIL import Image

from atelier.data.base import array_to_tensor
from atelier.diffusion.options import SamplingOptions
from atelier.kinds.registry import load_model
from atelier.pipelines.editing import Editor
from atelier.pipelines.masks import latent_keep_mask, prepare_image, prepare_mask
from atelier.pipelines.text2image import Start

OPTIONS = SamplingOptions(steps=4, guidance=2.0, sampler="euler")


@pytest.fixture(scope="module")
def editor(tiny_model_dir):
    return Editor(load_model(tiny_model_dir).pipeline())


def scene(size=32, color=(255, 0, 0)):
    image = Image.new("RGB", (size, size), (255, 255, 255))
    image.paste(color, (4, 4, 12, 12))
    return image


def right_half_mask(size=32):
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 2, 0, size, size))
    return mask


def test_img2img_is_deterministic_batch_equals_singles_and_checks_strength(editor):
    images = [scene(), scene(color=(0, 0, 255))]
    both = editor.img2img(images, ["a red circle", "a blue square"], seeds=[1, 2], strength=0.5,
                          options=OPTIONS)  # fmt: skip
    single = editor.img2img(images[1:], ["a blue square"], seeds=[2], strength=0.5, options=OPTIONS)
    np.testing.assert_array_equal(np.asarray(both[1]), np.asarray(single[0]))
    assert both[0].size == (32, 32)
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        editor.img2img(images[:1], ["x"], seeds=[0], strength=0.0, options=OPTIONS)


def test_low_strength_stays_closer_to_the_source(editor):
    # In latent space: the random tiny VAE's decoder would blur any comparison in pixels.
    pipe = editor.pipe
    z = pipe.encode(torch.stack([array_to_tensor(np.asarray(scene()))]))
    gaps = []
    for strength in (0.25, 1.0):
        out = pipe.sample(["a red circle"], seeds=[0], options=OPTIONS, start=Start(z, strength))
        gaps.append((out - z).abs().mean().item())
    assert gaps[0] < gaps[1]


def test_inpainting_leaves_pixels_outside_the_mask_untouched(editor):
    source = scene()
    out = editor.inpaint([source], [right_half_mask()], ["a red circle and a blue square"],
                         seeds=[3], options=OPTIONS)[0]  # fmt: skip
    a, b = np.asarray(out), np.asarray(source)
    np.testing.assert_array_equal(a[:, :16], b[:, :16])
    assert (a[:, 16:] != b[:, 16:]).any()
    feathered = editor.inpaint([source], [right_half_mask()], ["x"], seeds=[3], feather=2,
                               resample=(2, 2), options=OPTIONS)[0]  # fmt: skip
    soft = prepare_mask(right_half_mask(), source, feather=2)
    untouched = soft == 0
    np.testing.assert_array_equal(np.asarray(feathered)[untouched], b[untouched])
    assert soft[:, 16:].min() == 1.0 and 0 < soft[:, 12:16].max() < 1


def test_outpainting_grows_the_canvas_and_keeps_the_original(editor):
    source = scene()
    out = editor.outpaint(source, "a red circle and a blue square", seed=0, right=16, top=16,
                          options=OPTIONS)  # fmt: skip
    assert out.size == (48, 48)
    np.testing.assert_array_equal(np.asarray(out)[16:, :32], np.asarray(source))
    with pytest.raises(ValueError, match="at least one side"):
        editor.outpaint(source, "x", seed=0, options=OPTIONS)


def test_variations_differ_from_each_other(editor):
    images = editor.variations(scene(), 3, seed=5, options=OPTIONS)
    assert len(images) == 3
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def test_bad_inputs_name_the_fix(editor):
    with pytest.raises(ValueError, match="the mask is 16x16 but the image is 32x32"):
        editor.inpaint([scene()], [right_half_mask(16)], ["x"], seeds=[0], options=OPTIONS)
    with pytest.raises(ValueError, match="mask is empty"):
        editor.inpaint([scene()], [Image.new("L", (32, 32), 0)], ["x"], seeds=[0], options=OPTIONS)
    full = editor.inpaint(
        [scene()], [Image.new("L", (32, 32), 255)], ["x"], seeds=[0], options=OPTIONS
    )
    assert full[0].size == (32, 32)  # a full mask is text-to-image at the image's size
    with pytest.raises(ValueError, match="multiples of 8: resize it, e.g. to 32x32"):
        editor.img2img(
            [Image.new("RGB", (30, 33))], ["x"], seeds=[0], strength=0.5, options=OPTIONS
        )
    with pytest.raises(ValueError, match="needs an inpainting model"):
        editor.inpaint([scene()], [right_half_mask()], ["x"], seeds=[0], method="trained")
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert prepare_image(rgba, multiple=16).getpixel((0, 0)) == (255, 255, 255)
    palette = scene().convert("P")
    assert prepare_image(palette, multiple=16).mode == "RGB"


def test_latent_keep_mask_is_conservative():
    repaint = np.zeros((8, 8), dtype=np.float32)
    repaint[0, 0] = 0.2  # one faintly painted pixel forgets its whole latent pixel
    keep = latent_keep_mask(repaint, 4)
    assert keep.shape == (1, 1, 2, 2) and keep[0, 0, 0, 0] == 0 and keep[0, 0, 1, 1] == 1
