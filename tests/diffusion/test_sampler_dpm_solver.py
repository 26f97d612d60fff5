"""DPM-Solver++(2M), ODE and SDE: golden parity with diffusers' DPMSolverMultistepScheduler."""

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers.dpm_solver import sample_dpmpp_2m, sample_dpmpp_2m_sde
from atelier.diffusion.schedules import alphas_cumprod, make_betas
from tests.diffusion.parity import TOL, initial_noise, run_diffusers, run_ours, toy_model

VARIANTS = [(sample_dpmpp_2m, "dpmsolver++"), (sample_dpmpp_2m_sde, "sde-dpmsolver++")]
SAMPLERS = [sample_dpmpp_2m, sample_dpmpp_2m_sde]


@pytest.mark.parametrize("sampler,algorithm_type", VARIANTS, ids=["ode", "sde"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(sampler, algorithm_type, prediction_type, steps):
    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
        algorithm_type=algorithm_type,
        solver_order=2,
    )
    stochastic = algorithm_type.startswith("sde")
    ref = run_diffusers(scheduler, steps, stochastic=stochastic)
    ours = run_ours(sampler, scheduler, prediction_type, stochastic=stochastic)
    assert (ours - ref).abs().max() <= TOL


@pytest.mark.parametrize("sampler", SAMPLERS, ids=["ode", "sde"])
def test_batch_equals_single_runs_bit_for_bit(sampler):
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 10)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = initial_noise() * plan.init_noise_sigma
    seeds = range(5, 5 + len(x))
    batch = sampler(denoiser, x, plan, generators=[torch.Generator().manual_seed(s) for s in seeds])
    for b, s in enumerate(seeds):
        single = sampler(
            denoiser, x[b : b + 1], plan, generators=[torch.Generator().manual_seed(s)]
        )
        assert torch.equal(batch[b : b + 1], single), f"image {b} differs"


@pytest.mark.parametrize("sampler", SAMPLERS, ids=["ode", "sde"])
def test_bad_arguments(sampler):
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 4)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="SamplingPlan"):
        sampler(denoiser, x, plan.sigmas)
    with pytest.raises(ValueError, match="one per image"):
        sampler(denoiser, x, plan, generators=[torch.Generator()])
    with pytest.raises(ValueError, match="start_step"):
        sampler(denoiser, x, plan, start_step=len(plan))
