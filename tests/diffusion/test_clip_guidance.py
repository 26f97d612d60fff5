"""CLIP guidance: the spherical distance and penalties against their formulas, cutouts that cover
the image, the guided denoiser's shift against finite differences of the loss, and its checks."""

import math

import pytest
import torch

from atelier.diffusion.clip_guidance import (
    REFERENCE_PIXELS,
    CLIPGuidanceOptions,
    CLIPTargets,
    cap_shift,
    clip_guidance,
    clip_loss,
    range_loss,
    spherical_dist_loss,
    tv_loss,
)
from atelier.diffusion.cutouts import CutoutOptions, cutout_boxes, make_cutouts
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe


def test_spherical_distance_is_half_the_squared_angle():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(50, 7, generator=g, dtype=torch.float64),
        torch.randn(50, 7, generator=g, dtype=torch.float64),
    )
    cos = (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))
    torch.testing.assert_close(spherical_dist_loss(3 * x, y), cos.clamp(-1, 1).acos() ** 2 / 2)
    # opposite vectors: theta = pi; equal ones: 0; broadcasting (n, 1, E) x (1, P, E)
    e = torch.eye(3, dtype=torch.float64)
    assert math.isclose(float(spherical_dist_loss(e[0], -e[0])), math.pi**2 / 2, rel_tol=1e-12)
    assert float(spherical_dist_loss(e[1], 2 * e[1])) == 0
    assert spherical_dist_loss(x[:4, None], y[None, :3]).shape == (4, 3)


def test_tv_and_range_losses_follow_their_formulas():
    img = torch.tensor([[[[0.0, 1.0], [3.0, 2.0]]]], dtype=torch.float64)  # (1, 1, 2, 2)
    # right differences: (1-0), 0 (edge), (2-3), 0; lower: (3-0), (2-1), 0, 0; mean over 4 pixels
    expected = ((1 + 9) + (0 + 1) + (1 + 0) + 0) / 4
    assert math.isclose(float(tv_loss(img)), expected)
    assert float(tv_loss(torch.ones(2, 3, 5, 5)).abs().max()) == 0
    x = torch.tensor([[[[-1.5, 0.3], [1.0, 2.0]]]])
    assert math.isclose(float(range_loss(x)), (0.25 + 0 + 0 + 1.0) / 4, rel_tol=1e-6)


def test_cutouts_lie_inside_and_cover_the_image():
    g = torch.Generator().manual_seed(1)
    options = CutoutOptions(count=16, cut_power=1.0, overview=False, min_fraction=0.25)
    covered = torch.zeros(24, 40, dtype=torch.long)
    sides = []
    for _ in range(40):
        for top, left, side in cutout_boxes(24, 40, cut_size=8, options=options, generator=g):
            assert 8 <= side <= 24 and 0 <= top <= 24 - side and 0 <= left <= 40 - side
            covered[top : top + side, left : left + side] += 1
            sides.append(side)
    assert (covered > 0).all()  # every pixel, corners included, is seen by some cutout
    assert min(sides) < 12 and max(sides) > 20  # sizes spread over [s_min, s_max]
    # cut power > 1 favours small cutouts
    small = CutoutOptions(count=200, cut_power=3.0, overview=False, min_fraction=0.25)
    mean = sum(s for *_, s in cutout_boxes(24, 40, cut_size=8, options=small, generator=g)) / 200
    assert mean < sum(sides) / len(sides)


def test_the_overview_cutout_is_the_whole_image_resized():
    img = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(2))
    options = CutoutOptions(count=3, translate=0.0, noise=0.0)
    cuts = make_cutouts(img, cut_size=8, options=options, generator=torch.Generator())
    assert cuts.shape == (3, 3, 8, 8)
    torch.testing.assert_close(cuts[0], torch.nn.functional.avg_pool2d(img[None], 2)[0])
    again = make_cutouts(img, cut_size=8, options=CutoutOptions(count=3),
                         generator=torch.Generator().manual_seed(5))  # fmt: skip
    same = make_cutouts(img, cut_size=8, options=CutoutOptions(count=3),
                        generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.equal(again, same)  # every draw comes from the generator


def tiny_clip() -> CLIP:
    torch.manual_seed(0)
    text = TextEncoderConfig(kind="transformer", max_length=8, width=8, layers=1, heads=2)
    encoder = build_text_encoder(text, tokenizer=train_bpe(["a red circle"] * 4, vocab_size=270))
    vision = ViTConfig(image_size=8, patch_size=4, width=8, layers=1, heads=2)
    clip = CLIP(CLIPConfig(vision=vision, embed_dim=6), encoder)
    # GPT-2's small init makes an untrained tower embed every image alike; these weights let
    # the image move the embedding, as a trained tower's do.
    torch.nn.init.normal_(clip.visual.patch_embedding.weight, std=0.5)
    torch.nn.init.normal_(clip.visual.blocks[0].attn.proj.weight, std=0.5)
    return clip.double().eval()


def toy_denoiser(x, sigma, t):
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
    return torch.tanh(x) / (1 + 0.1 * s) + 0.05 * x


def test_guided_shift_is_minus_sigma_squared_times_the_loss_gradient():
    """D' - D = -sigma^2 (H W / 256^2) grad_x L(D(x)), checked by central differences."""
    clip = tiny_clip()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.7, 2.0], dtype=torch.float64)
    targets = CLIPTargets(torch.nn.functional.normalize(torch.randn(2, 2, 6, generator=g,
                                                                   dtype=torch.float64), dim=-1),
                          torch.tensor([[1.0, -0.5], [2.0, 0.0]]))  # fmt: skip
    options = CLIPGuidanceOptions(
        scale=300.0,
        tv_scale=5.0,
        range_scale=20.0,
        max_shift=None,
        cutouts=CutoutOptions(count=4, translate=0.1, noise=0.2),
    )

    def loss(b, xb):  # L of image b, its cutouts drawn from a generator seeded as the guide's
        return clip_loss(
            toy_denoiser(xb, sigma[b : b + 1], 0)[0],
            embed=clip.encode_image,
            cut_size=8,
            targets=targets.embeddings[b],
            weights=targets.weights[b],
            options=options,
            generator=torch.Generator().manual_seed(10 + b),
        )

    guided = clip_guidance(toy_denoiser, embed=clip.encode_image, cut_size=8, targets=targets,
                           options=options, generators=[torch.Generator().manual_seed(10 + b)
                                                        for b in range(2)])  # fmt: skip
    with torch.no_grad():  # as inside a sampler
        shift = guided(x, sigma, torch.zeros(2)) - toy_denoiser(x, sigma, 0)
    h = 1e-5
    for b, idx in [(0, (0, 3, 4)), (0, (2, 11, 0)), (1, (1, 6, 6)), (1, (0, 0, 11))]:
        e = torch.zeros_like(x[b : b + 1])
        e[(0, *idx)] = h
        with torch.no_grad():
            fd = (loss(b, x[b : b + 1] + e) - loss(b, x[b : b + 1] - e)) / (2 * h)
        expected = -(sigma[b] ** 2) * 144 / REFERENCE_PIXELS * fd
        assert math.isclose(float(shift[(b, *idx)]), float(expected), rel_tol=1e-5, abs_tol=1e-12)
    assert shift.abs().max() > 0


def test_max_shift_caps_each_images_rms():
    shift = torch.stack([torch.full((3, 4, 4), 5.0), torch.full((3, 4, 4), 0.01)])
    capped = cap_shift(shift, 0.5)
    assert math.isclose(float(capped[0].pow(2).mean().sqrt()), 0.5, rel_tol=1e-6)
    assert torch.equal(capped[1], shift[1])  # under the cap: untouched


def test_bad_settings_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        CLIPGuidanceOptions(scale=float("nan"))
    with pytest.raises(ValueError, match="cutouts must be a positive integer"):
        CutoutOptions(count=0)
    with pytest.raises(ValueError, match="weights"):
        CLIPTargets(torch.zeros(2, 1, 4), torch.ones(3, 1))
    guided = clip_guidance(
        toy_denoiser,
        embed=tiny_clip().encode_image,
        cut_size=8,
        targets=CLIPTargets.single(torch.ones(1, 6)),
        options=CLIPGuidanceOptions(),
        generators=[torch.Generator()],
    )
    with pytest.raises(ValueError, match="set up for 1 images got a batch of 2"):
        guided(torch.zeros(2, 3, 8, 8), torch.ones(2), torch.zeros(2))
