"""DiffAugment's transforms, the per-seed noise, truncation and the GAN's options."""

import pytest
import torch

from atelier.gan.augment import color, diff_augment, translate
from atelier.gan.noise import draw_z, truncate
from atelier.gan.options import GANOptions
from atelier.kinds.base import option_specs, with_options


def test_translation_shifts_whole_pixels_and_pads_with_zero():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16).expand(2, 3, 16, 16)
    out = translate(x, generator=torch.Generator().manual_seed(0))
    for i in range(2):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                src = x[i][:, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)]
                shifted[:, max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)] = src
                found |= torch.equal(out[i], shifted)
        assert found, i


def test_augmentations_are_differentiable_and_seeded():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    out = diff_augment(x, ("color", "translation"), generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x, ("color", "translation"), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert diff_augment(x, ()) is x
    c = color(x.detach(), generator=torch.Generator().manual_seed(2))
    assert c.shape == x.shape and not torch.equal(c, x)
    with pytest.raises(ValueError, match="'cutout'; valid: translation, color"):
        diff_augment(x, ("cutout",))


def test_each_image_draws_its_own_noise_and_truncation_scales_it():
    z = draw_z([3, 4, 3], 7)
    assert torch.equal(z[0], z[2]) and not torch.equal(z[0], z[1])
    assert torch.equal(draw_z([4], 7)[0], z[1])
    assert torch.equal(truncate(z, 0.5), z * 0.5)
    assert truncate(z, 0.0).abs().sum() == 0
    with pytest.raises(ValueError, match="truncation psi must be in"):
        truncate(z, 1.5)


def test_gan_options_go_through_the_generic_option_machinery():
    assert [(s.name, s.type, s.default) for s in option_specs(GANOptions)] == [
        ("truncation", "float", 1.0)
    ]
    assert with_options(GANOptions(), {"truncation": "0.7"}, who="g").truncation == 0.7
    for bad in ("-0.1", "1.5", "nan"):
        with pytest.raises(ValueError, match="truncation"):
            with_options(GANOptions(), {"truncation": bad}, who="g")
    with pytest.raises(ValueError, match="g takes no steps option; its options: truncation"):
        with_options(GANOptions(), {"steps": "3"}, who="g")
    assert GANOptions(0.7).label() == "psi0.7"
