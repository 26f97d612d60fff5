"""Heun: golden parity with diffusers' HeunDiscreteScheduler, batch invariance, bad arguments."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import HeunDiscreteScheduler

from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers.heun import sample_heun
from atelier.diffusion.schedules import alphas_cumprod, make_betas
from tests.diffusion.parity import (
    TOL,
    initial_noise,
    run_diffusers,
    run_ours,
    toy_model,
)


def per_step(scheduler: HeunDiscreteScheduler) -> SimpleNamespace:
    """The scheduler as the harness should see it: one timestep per step, not per model call.

    Diffusers lists t_0, then every later timestep twice (it is both the second stage of one step
    and the first of the next).
    """
    ts = scheduler.timesteps
    return SimpleNamespace(
        timesteps=torch.cat([ts[:1], ts[1::2]]), init_noise_sigma=scheduler.init_noise_sigma
    )


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(prediction_type, steps):
    scheduler = HeunDiscreteScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    ref = run_diffusers(scheduler, steps, stochastic=False)
    ours = run_ours(sample_heun, per_step(scheduler), prediction_type, stochastic=False)
    assert (ours - ref).abs().max() <= TOL


def test_batch_equals_single_runs_bit_for_bit():
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 10)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = initial_noise() * plan.init_noise_sigma
    seeds = range(5, 5 + len(x))
    batch = sample_heun(
        denoiser, x, plan, generators=[torch.Generator().manual_seed(s) for s in seeds]
    )
    for b, s in enumerate(seeds):
        single = sample_heun(
            denoiser, x[b : b + 1], plan, generators=[torch.Generator().manual_seed(s)]
        )
        assert torch.equal(batch[b : b + 1], single), f"image {b} differs"


def test_bad_arguments():
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 4)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="SamplingPlan"):
        sample_heun(denoiser, x, plan.sigmas)
    with pytest.raises(ValueError, match="one per image"):
        sample_heun(denoiser, x, plan, generators=[torch.Generator()])
    with pytest.raises(ValueError, match="start_step"):
        sample_heun(denoiser, x, plan, start_step=len(plan))
