"""Masked sampling: the known region ends exactly at the known latents for every sampler, it
follows the re-noised original on the way, and RePaint jumps with one pass change nothing."""

import pytest
import torch

from atelier.diffusion.inpainting import keep_known, sample_with_jumps, segment
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import SAMPLERS, StepInfo, get_sampler
from atelier.diffusion.schedules import alphas_cumprod, make_betas

ABAR = alphas_cumprod(make_betas("scaled_linear", 1000))


def toy_denoiser(x, sigma, t):
    return torch.tanh(x / (1 + sigma.view(-1, 1, 1, 1).to(x) ** 2).sqrt())


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    known = torch.randn(2, 3, 6, 6, generator=g)
    keep = torch.zeros(2, 1, 6, 6)
    keep[..., :, :3] = 1  # the left half is known
    noise = torch.randn(2, 3, 6, 6, generator=g)
    return known, keep, noise


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_known_region_ends_exactly_at_the_known_latents(name):
    known, keep, noise = setup()
    plan = make_plan(ABAR, 8, spacing="trailing")
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    den = keep_known(toy_denoiser, known, keep)
    seen: list[StepInfo] = []
    out = get_sampler(name)(den, noise * plan.init_noise_sigma, plan, generators=gens,
                            callback=seen.append)  # fmt: skip
    torch.testing.assert_close(out[..., :3], known[..., :3], atol=1e-5, rtol=0)
    assert not torch.allclose(out[..., 3:], known[..., 3:])
    # On the way, the known region is the original plus noise at the step's level.
    mid = seen[3]
    residual = (mid.x - known)[..., :3] / mid.sigma_next
    assert 0.3 < residual.std() < 3.0


def test_soft_mask_blends_and_shapes_are_checked():
    known, keep, noise = setup()
    den = keep_known(toy_denoiser, known, torch.full_like(keep, 0.5))
    sigma, t = torch.tensor([1.0, 1.0]), torch.tensor([500.0, 500.0])
    torch.testing.assert_close(
        den(noise, sigma, t), 0.5 * known + 0.5 * toy_denoiser(noise, sigma, t)
    )
    with pytest.raises(ValueError, match="does not match"):
        keep_known(toy_denoiser, known, torch.ones(2, 1, 5, 5))


def test_jumps_with_one_pass_equal_plain_sampling_and_more_passes_keep_the_known_region():
    known, keep, noise = setup()
    plan = make_plan(ABAR, 10, spacing="trailing")
    den = keep_known(toy_denoiser, known, keep)
    euler = get_sampler("euler")
    plain = euler(den, noise * plan.init_noise_sigma, plan)
    one = sample_with_jumps(euler, den, noise * plan.init_noise_sigma, plan, jump=3, resample=1)
    torch.testing.assert_close(one, plain)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    steps: list[int] = []
    three = sample_with_jumps(euler, den, noise * plan.init_noise_sigma, plan, jump=3, resample=3,
                              generators=gens, callback=lambda i: steps.append(i.i))  # fmt: skip
    assert steps == list(range(10))  # the last pass of every segment is reported once
    torch.testing.assert_close(three[..., :3], known[..., :3], atol=1e-5, rtol=0)
    assert not torch.allclose(three, plain)
    assert len(segment(plan, 3, 6)) == 3
    with pytest.raises(ValueError, match=">= 1"):
        sample_with_jumps(euler, den, noise, plan, jump=0, resample=1)
