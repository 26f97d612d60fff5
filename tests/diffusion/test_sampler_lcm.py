"""LCM: golden parity with diffusers' LCMScheduler, a reference written from the paper, the
``lcm`` timestep spacing, and how the generators advance."""

import pytest
import torch
from diffusers import LCMScheduler

from atelier.diffusion.consistency import boundary_scalings
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import make_plan, plan_from_timesteps
from atelier.diffusion.samplers.lcm import sample_lcm
from atelier.diffusion.schedules import alphas_cumprod, make_betas, spaced_timesteps
from tests.diffusion.parity import (
    REL,
    SHAPE,
    generators,
    initial_noise,
    run_diffusers,
    run_ours,
    toy_model,
)
from tests.numerics import assert_close_to

ABAR = alphas_cumprod(make_betas("scaled_linear", 1000))


def scheduler(prediction_type: str = "epsilon") -> LCMScheduler:
    return LCMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
        set_alpha_to_one=True, prediction_type=prediction_type,
    )  # fmt: skip


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_parity_with_diffusers(prediction_type, steps):
    reference = scheduler(prediction_type)
    ref = run_diffusers(reference, steps, stochastic=True)
    ours = run_ours(sample_lcm, reference, prediction_type, stochastic=True)
    assert_close_to(ours, ref, rel=REL)


def lcm_reference(prediction_type: str, timesteps: list[int]) -> torch.Tensor:
    """Luo et al. 2023, Algorithm 3, in the VP form of the paper, in float64: x_T ~ N(0, I);
    at each t, x_0 from the network's output, f = c_skip x_t + c_out x_0 with sigma_data 0.5 and
    the timestep scaled by 10, then x_t' = sqrt(abar_t') f + sqrt(1 - abar_t') z until the last."""
    gens = generators()
    x = initial_noise().double()
    for i, t in enumerate(timesteps):
        a = ABAR[t]
        out = toy_model(x, torch.full((x.shape[0],), float(t), dtype=torch.float64))
        if prediction_type == "epsilon":
            x0 = (x - (1 - a).sqrt() * out) / a.sqrt()
        else:
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
        c_skip = 0.25 / ((10.0 * t) ** 2 + 0.25)
        c_out = 10.0 * t / ((10.0 * t) ** 2 + 0.25) ** 0.5
        f = c_skip * x + c_out * x0
        if i == len(timesteps) - 1:
            return f
        z = torch.stack([torch.randn(SHAPE[1:], generator=g, dtype=torch.float64) for g in gens])
        a_next = ABAR[timesteps[i + 1]]
        x = a_next.sqrt() * f + (1 - a_next).sqrt() * z
    raise AssertionError("no steps")


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("timesteps", [[999], [999, 499], [999, 759, 499, 259], [600, 300, 0]])
def test_matches_the_papers_algorithm(prediction_type, timesteps):
    plan = plan_from_timesteps(ABAR, torch.tensor(timesteps, dtype=torch.float64))
    x = initial_noise().double() * plan.init_noise_sigma
    ours = sample_lcm(VPDenoiser(toy_model, prediction_type), x, plan, generators=generators())
    assert_close_to(ours, lcm_reference(prediction_type, timesteps), rel=1e-12)


def test_boundary_scalings():
    c_skip, c_out = boundary_scalings(torch.tensor([0.0, 1.0, 999.0], dtype=torch.float64))
    assert c_skip[0] == 1 and c_out[0] == 0  # f(x, 0) = x
    assert float(c_skip[1]) <= 0.0025 and float(c_out[2]) > 1 - 1e-8  # f is x_0's estimate
    reference = scheduler()
    for t in (0, 1, 19, 259, 999):
        ref_skip, ref_out = reference.get_scalings_for_boundary_condition_discrete(torch.tensor(t))
        ours_skip, ours_out = boundary_scalings(float(t))
        assert float(ours_skip) == pytest.approx(float(ref_skip), rel=1e-6, abs=1e-12)
        assert float(ours_out) == pytest.approx(float(ref_out), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 6, 8, 25, 50])
def test_lcm_spacing_is_the_schedulers(steps):
    reference = scheduler()
    reference.set_timesteps(steps)
    ours = spaced_timesteps(1000, steps, "lcm")
    assert ours.tolist() == reference.timesteps.double().tolist()
    assert make_plan(ABAR, steps, spacing="lcm").timesteps.tolist() == ours.tolist()


def test_lcm_spacing_refuses_more_steps_than_its_grid():
    with pytest.raises(ValueError, match="at most 50 steps"):
        spaced_timesteps(1000, 51, "lcm")


def test_generators_advance_like_diffusers():
    """One draw per step but the last, which ends at sigma = 0, as diffusers draws."""
    plan = make_plan(ABAR, 4, spacing="lcm")
    used = generators()
    sample_lcm(VPDenoiser(toy_model, "epsilon"), initial_noise() * plan.init_noise_sigma, plan,
               generators=used)  # fmt: skip
    expected = generators()
    for g in expected:
        for _ in range(len(plan) - 1):
            torch.randn(SHAPE[1:], generator=g)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(used, expected))
