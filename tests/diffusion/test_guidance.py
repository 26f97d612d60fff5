"""Guidance wrappers: exact formulas, golden parity with diffusers, and their validation."""

import math
from dataclasses import dataclass

import pytest
import torch
from diffusers import DDPMScheduler

from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.guidance import (
    Composition,
    classifier_free_guidance,
    classifier_guidance,
    concat_cond,
    dynamic_threshold,
    embedded_guidance,
    rescale_guidance,
    static_threshold,
)
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers.euler import sample_euler
from atelier.diffusion.schedules import alphas_cumprod, make_betas
from atelier.text.encoder import TextEmbedding
from tests.numerics import assert_close_to

B, SHAPE = 3, (3, 3, 6, 6)


def embedding(seed: int, batch: int = B) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 5, dtype=torch.bool)
    mask[:, 3:] = False
    return TextEmbedding(
        states=torch.randn(batch, 5, 4, generator=g) * mask[..., None],
        mask=mask,
        pooled=torch.randn(batch, 2, generator=g),
    )


def toy_net(x: torch.Tensor, t: torch.Tensor, cond: TextEmbedding) -> torch.Tensor:
    """Per-image, depends on x, t and every field of the embedding."""
    per_image = (-1, *([1] * (x.ndim - 1)))
    tt = torch.as_tensor(t, dtype=x.dtype).reshape(per_image) / 1000
    words = (cond.states.sum(1) / cond.mask.sum(1, keepdim=True)).mean(1).reshape(per_image)
    pooled = cond.pooled.mean(1).reshape(per_image)
    return torch.tanh(x) * (1 + words) + pooled * torch.cos(3 * tt) + 0.3 * torch.sin(x + tt)


class Spy:
    """Counts network calls and the batch each one sees."""

    def __init__(self, net):
        self.net, self.batches = net, []

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        return self.net(x, t, cond)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SHAPE, generator=g), torch.tensor([50.0, 400.0, 900.0])


# concat_cond -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nested:
    emb: TextEmbedding
    extra: torch.Tensor | None


def test_concat_cond_tensors_and_dataclasses():
    a, b = embedding(1), embedding(2)
    both = concat_cond(a, b)
    assert isinstance(both, TextEmbedding)
    for name in ("states", "mask", "pooled"):
        assert torch.equal(getattr(both, name), torch.cat([getattr(a, name), getattr(b, name)]))
    nested = concat_cond(Nested(a, None), Nested(b, None))
    assert nested.extra is None and torch.equal(nested.emb.pooled, both.pooled)
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(concat_cond(x, y), torch.cat([x, y]))


def test_concat_cond_rejects_mismatches():
    with pytest.raises(TypeError, match="TextEmbedding and Tensor"):
        concat_cond(embedding(1), torch.zeros(B, 2))
    with pytest.raises(ValueError, match="batch of 3 with one of 1"):
        concat_cond(embedding(1), embedding(2, batch=1))


# Classifier-free guidance -----------------------------------------------------------------------


def null_like(like: TextEmbedding) -> TextEmbedding:
    """The null embedding's layout (see ``TextEncoder.null_embedding``)."""
    mask = torch.zeros_like(like.mask)
    mask[:, 0] = True
    return TextEmbedding(torch.zeros_like(like.states), mask, torch.zeros_like(like.pooled))


@pytest.mark.parametrize("uncond_seed", [None, 7], ids=["null", "negative_prompt"])
def test_cfg_is_one_batched_call_of_the_formula(uncond_seed):
    cond = embedding(1)
    uncond = embedding(uncond_seed) if uncond_seed else null_like(cond)
    spy = Spy(toy_net)
    x, t = inputs()
    out = classifier_free_guidance(spy, cond, uncond, 7.5)(x, t)
    assert spy.batches == [2 * B]
    eps_c, eps_u = toy_net(x, t, cond), toy_net(x, t, uncond)
    torch.testing.assert_close(out, eps_u + 7.5 * (eps_c - eps_u), rtol=1e-5, atol=1e-5)


def test_scale_one_is_the_conditional_model_in_one_call():
    cond, spy = embedding(1), Spy(toy_net)
    x, t = inputs()
    out = classifier_free_guidance(spy, cond, embedding(2), 1.0, rescale=0.7)(x, t)
    assert spy.batches == [B]
    assert torch.equal(out, toy_net(x, t, cond))


def test_scale_zero_is_the_unconditional_model():
    x, t = inputs()
    out = classifier_free_guidance(toy_net, embedding(1), embedding(2), 0.0)(x, t)
    torch.testing.assert_close(out, toy_net(x, t, embedding(2)))


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.7, 1.0])
def test_rescale_matches_diffusers(phi):
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    x, t = inputs()
    cond, uncond = embedding(1), embedding(2)
    eps_c, eps_u = toy_net(x, t, cond), toy_net(x, t, uncond)
    guided = eps_u + 9.0 * (eps_c - eps_u)
    ref = rescale_noise_cfg(guided, eps_c, guidance_rescale=phi)
    # A few float32 ops on values up to ~8 (guidance 9): about one ulp of the largest apart.
    assert_close_to(rescale_guidance(guided, eps_c, phi), ref, rel=1e-6)
    out = classifier_free_guidance(toy_net, cond, uncond, 9.0, rescale=phi)(x, t)
    assert_close_to(out, ref, rel=1e-6)


def test_full_rescale_gives_the_conditional_std():
    x, t = inputs()
    out = classifier_free_guidance(toy_net, embedding(1), embedding(2), 12.0, rescale=1.0)(x, t)
    std = toy_net(x, t, embedding(1)).std(dim=(1, 2, 3))
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), std)


def test_interval_outside_is_exactly_conditional_and_skips_uncond():
    cond, spy = embedding(1), Spy(toy_net)
    x, t = inputs()
    out = classifier_free_guidance(spy, cond, embedding(2), 5.0, interval=(901, 999))(x, t)
    assert spy.batches == [B]
    assert torch.equal(out, toy_net(x, t, cond))


def test_interval_guides_only_the_images_inside():
    cond, uncond = embedding(1), embedding(2)
    x, t = inputs()  # t = 50, 400, 900
    out = classifier_free_guidance(toy_net, cond, uncond, 5.0, interval=(400, 900))(x, t)
    full = classifier_free_guidance(toy_net, cond, uncond, 5.0)(x, t)
    torch.testing.assert_close(out[0], toy_net(x, t, cond)[0])
    torch.testing.assert_close(out[1:], full[1:])


def test_guided_sampling_needs_no_sampler_support():
    """Euler runs guided models unchanged; a sigma interval converts to t through the plan."""
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear")), 8)
    cond, uncond = embedding(1), embedding(2)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5)) * plan.init_noise_sigma

    def run(model):
        return sample_euler(VPDenoiser(model, "epsilon"), x, plan)

    plain = run(lambda x_t, t: toy_net(x_t, t, cond))
    t_lo, t_hi = plan.t_of(torch.tensor([0.28, 5.42])).tolist()
    interval = run(classifier_free_guidance(toy_net, cond, uncond, 4.0, interval=(t_lo, t_hi)))
    never = run(classifier_free_guidance(toy_net, cond, uncond, 4.0, interval=(-2.0, -1.0)))
    assert torch.equal(never, plain)
    assert torch.isfinite(interval).all() and not torch.allclose(interval, plain)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scale_is_rejected(scale):
    with pytest.raises(ValueError, match="finite"):
        classifier_free_guidance(toy_net, embedding(1), embedding(2), scale)
    with pytest.raises(ValueError, match="finite"):
        classifier_guidance(lambda x, s, t: x, lambda x, t: x.flatten(1), torch.zeros(B), scale)


def test_bad_interval_and_rescale_are_rejected():
    with pytest.raises(ValueError, match="lo <= hi"):
        classifier_free_guidance(toy_net, embedding(1), embedding(2), 5.0, interval=(600, 200))
    with pytest.raises(ValueError, match=r"phi must be in \[0, 1\]"):
        classifier_free_guidance(toy_net, embedding(1), embedding(2), 5.0, rescale=1.5)


def rows(emb: TextEmbedding, i: int) -> TextEmbedding:
    return TextEmbedding(emb.states[i : i + 1], emb.mask[i : i + 1], emb.pooled[i : i + 1])


def test_a_scale_per_image_guides_each_image_at_its_own():
    cond, uncond = embedding(1), embedding(2)
    scales = torch.tensor([1.0, 2.5, 7.0])
    x, t = inputs()
    spy = Spy(toy_net)
    out = classifier_free_guidance(spy, cond, uncond, scales)(x, t)
    assert spy.batches == [2 * B]  # a row at scale 1 still rides in the one doubled call
    for i, s in enumerate(scales.tolist()):
        one = classifier_free_guidance(toy_net, rows(cond, i), rows(uncond, i), s)
        torch.testing.assert_close(out[i : i + 1], one(x[i : i + 1], t[i : i + 1]))
    with pytest.raises(ValueError, match="finite"):
        classifier_free_guidance(toy_net, cond, uncond, torch.tensor([1.0, math.nan, 2.0]))
    composition = Composition(torch.arange(B), torch.ones(B), B)
    with pytest.raises(ValueError, match="one scale"):
        classifier_free_guidance(toy_net, cond, uncond, scales, composition=composition)


def test_embedded_guidance_is_one_conditional_call_reading_the_scale():
    calls = []

    def net(x, t, cond, scale):
        calls.append((x.shape[0], scale))
        return toy_net(x, t, cond) * scale.reshape(-1, 1, 1, 1)

    cond = embedding(1)
    x, t = inputs()
    out = embedded_guidance(net, cond, 2.5)(x, t)
    assert [b for b, _ in calls] == [B] and torch.equal(calls[0][1], torch.full((B,), 2.5))
    assert torch.equal(out, toy_net(x, t, cond) * 2.5)
    scales = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(embedded_guidance(net, cond, scales)(x, t)[1], toy_net(x, t, cond)[1] * 2)
    with pytest.raises(ValueError, match="finite"):
        embedded_guidance(net, cond, math.inf)


# Classifier guidance ---------------------------------------------------------------------------

MEANS = torch.randn(4, 3 * 6 * 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def gaussian_classifier(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log N(x_t; m_k, tau I) up to a constant, tau = 1 + t / 1000: the logits of p(k | x_t)."""
    tau = 1 + t.reshape(-1, 1) / 1000
    return -((x_t.flatten(1)[:, None] - MEANS) ** 2).sum(-1) / (2 * tau)  # (B, K)


def exact_grad(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad_{x_t} log p(y | x_t) = (m_y - sum_k p_k m_k) / tau, in closed form."""
    p = gaussian_classifier(x_t, t).softmax(-1)  # (B, K)
    tau = 1 + t.reshape(-1, 1) / 1000
    return ((MEANS[y] - p @ MEANS) / tau).reshape(x_t.shape)


def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.tanh(x_t) + 0.1 * t.reshape(-1, 1, 1, 1) / 1000


def test_classifier_guidance_is_the_exact_score_shift():
    x, t = inputs()
    x, t = x.double() * 3, t.double()
    sigma, y, s = torch.tensor([0.5, 2.0, 9.0], dtype=torch.float64), torch.tensor([0, 2, 3]), 2.5
    denoiser = VPDenoiser(eps_model, "epsilon")
    with torch.no_grad():  # as inside a sampler
        guided = classifier_guidance(denoiser, gaussian_classifier, y, s)(x, sigma, t)
    sig = sigma.reshape(-1, 1, 1, 1)
    x_t = x / (1 + sig**2).sqrt()
    expected = denoiser(x, sigma, t) + s * sig**2 / (1 + sig**2).sqrt() * exact_grad(x_t, t, y)
    torch.testing.assert_close(guided, expected, rtol=1e-10, atol=1e-10)


def test_classifier_guidance_equals_the_papers_eps_form():
    """eps' = eps - s sqrt(1 - abar) grad_{x_t} log p (Dhariwal & Nichol 2021, Algorithm 2)."""
    x, t = inputs(1)
    x, t, y, s = x.double(), t.double(), torch.tensor([1, 1, 0]), 4.0
    sigma = torch.tensor([0.3, 1.5, 12.0], dtype=torch.float64)
    abar = (1 / (1 + sigma**2)).reshape(-1, 1, 1, 1)

    def guided_eps(x_t, t_in):
        return eps_model(x_t, t_in) - s * (1 - abar).sqrt() * exact_grad(x_t, t_in, y)

    ours = classifier_guidance(VPDenoiser(eps_model, "epsilon"), gaussian_classifier, y, s)
    torch.testing.assert_close(
        ours(x, sigma, t), VPDenoiser(guided_eps, "epsilon")(x, sigma, t), rtol=1e-10, atol=1e-10
    )


# Thresholding ----------------------------------------------------------------------------------


def fixed_x0(x0: torch.Tensor):
    return lambda x, sigma, t: x0


@pytest.mark.parametrize("p", [0.9, 0.995, 1.0])
@pytest.mark.parametrize("s_max", [1.0, 2.5, math.inf])
def test_dynamic_threshold_matches_diffusers(p, s_max):
    g = torch.Generator().manual_seed(4)
    x0 = (
        torch.randn(4, 3, 8, 8, generator=g)
        * torch.tensor([0.2, 1.0, 3.0, 6.0])[:, None, None, None]
    )
    ref = DDPMScheduler(thresholding=True, dynamic_thresholding_ratio=p, sample_max_value=s_max)
    ours = dynamic_threshold(fixed_x0(x0), p, s_max=s_max)(x0, torch.tensor(1.0), torch.tensor(0))
    assert torch.equal(ours, ref._threshold_sample(x0.clone()))


def test_dynamic_threshold_keeps_half_precision():
    x0 = (torch.randn(2, 3, 4, 4) * 4).half()
    out = dynamic_threshold(fixed_x0(x0))(x0, torch.tensor(1.0), torch.tensor(0))
    assert out.dtype == torch.float16 and out.abs().max() <= 1


def test_static_threshold_clips_to_data_range():
    x0 = torch.linspace(-3, 3, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out = static_threshold(fixed_x0(x0))(x0, torch.tensor(1.0), torch.tensor(0))
    assert torch.equal(out, x0.clamp(-1, 1))


@pytest.mark.parametrize("p", [0.0, -0.5, 1.01, float("nan")])
def test_percentile_outside_unit_interval_is_rejected(p):
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 1\]"):
        dynamic_threshold(fixed_x0(torch.zeros(1)), p)


def test_s_max_below_one_is_rejected():
    with pytest.raises(ValueError, match="at least 1"):
        dynamic_threshold(fixed_x0(torch.zeros(1)), 0.99, s_max=0.5)


# Composable diffusion ---------------------------------------------------------------------------


def rows_of(emb: TextEmbedding, index: list[int]) -> TextEmbedding:
    return TextEmbedding(emb.states[index], emb.mask[index], emb.pooled[index])


def test_one_row_per_image_of_weight_one_is_plain_cfg_bit_for_bit():
    cond, uncond = embedding(1), embedding(2)
    x, t = inputs()
    plain = classifier_free_guidance(toy_net, cond, uncond, 4.0, rescale=0.5)(x, t)
    single = Composition(torch.arange(B), torch.ones(B), images=B)
    composed = classifier_free_guidance(
        toy_net, cond, uncond, 4.0, rescale=0.5, composition=single
    )(x, t)
    assert torch.equal(plain, composed)


def test_composition_is_one_call_of_the_weighted_sum():
    # Image 0 composes rows 0 and 1 (weights 1 and 0.5), image 1 row 2 alone, image 2 rows 3
    # and 4 (weights 1 and -0.5: a negative weight steers away).
    many, uncond = embedding(3, batch=5), embedding(2)
    composition = Composition(
        torch.tensor([0, 0, 1, 2, 2]), torch.tensor([1, 0.5, 1, 1, -0.5]), images=B
    )
    spy, (x, t), s = Spy(toy_net), inputs(), 6.0
    out = classifier_free_guidance(spy, many, uncond, s, composition=composition)(x, t)
    assert spy.batches == [5 + B]
    eps_u = toy_net(x, t, uncond)
    expected = []
    for b, parts in enumerate([[(0, 1.0), (1, 0.5)], [(2, 1.0)], [(3, 1.0), (4, -0.5)]]):
        total = torch.zeros_like(eps_u[b])
        for k, w in parts:
            eps_k = toy_net(x[[b]], t[[b]], rows_of(many, [k]))[0]
            total = total + w * (eps_k - eps_u[b])
        expected.append(eps_u[b] + s * total)
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-5, atol=1e-5)
    # Outside a guidance interval an image gets the composition at s = 1.
    at_one = classifier_free_guidance(toy_net, many, uncond, 1.0, composition=composition)(x, t)
    windowed = classifier_free_guidance(
        toy_net, many, uncond, s, interval=(0.0, 500.0), composition=composition
    )(x, t)
    assert torch.equal(windowed[:2], out[:2]) and torch.equal(windowed[2], at_one[2])


def test_bad_compositions_are_clear():
    with pytest.raises(ValueError, match="one image index and one weight per row"):
        Composition(torch.tensor([0, 1]), torch.ones(3), images=2)
    with pytest.raises(ValueError, match="must be finite"):
        Composition(torch.tensor([0]), torch.tensor([math.nan]), images=1)
    with pytest.raises(ValueError, match="outside a batch of 3"):
        Composition(torch.tensor([0, 5]), torch.ones(2), images=3)
    two = Composition(torch.tensor([0, 1]), torch.ones(2), images=2)
    x, t = inputs()
    with pytest.raises(ValueError, match="a composition of 2 images guides a batch of 3"):
        classifier_free_guidance(toy_net, embedding(1, batch=2), embedding(2), 3.0,
                                 composition=two)(x, t)  # fmt: skip
