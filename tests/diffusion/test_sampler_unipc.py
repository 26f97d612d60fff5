"""UniPC: golden parity with diffusers' UniPCMultistepScheduler, batch invariance, bad arguments."""

import pytest
import torch
from diffusers import UniPCMultistepScheduler

from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers.unipc import sample_unipc
from atelier.diffusion.schedules import alphas_cumprod, make_betas
from tests.diffusion.parity import (
    TOL,
    initial_noise,
    run_diffusers,
    run_ours,
    toy_model,
)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(prediction_type, steps):
    scheduler = UniPCMultistepScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    ref = run_diffusers(scheduler, steps, stochastic=False)
    ours = run_ours(sample_unipc, scheduler, prediction_type, stochastic=False)
    assert (ours - ref).abs().max() <= TOL


def test_batch_equals_single_runs_bit_for_bit():
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 10)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = initial_noise() * plan.init_noise_sigma
    seeds = range(5, 5 + len(x))
    batch = sample_unipc(
        denoiser, x, plan, generators=[torch.Generator().manual_seed(s) for s in seeds]
    )
    for b, s in enumerate(seeds):
        single = sample_unipc(
            denoiser, x[b : b + 1], plan, generators=[torch.Generator().manual_seed(s)]
        )
        assert torch.equal(batch[b : b + 1], single), f"image {b} differs"


def test_bad_arguments():
    plan = make_plan(alphas_cumprod(make_betas("scaled_linear", 1000)), 4)
    denoiser = VPDenoiser(toy_model, "epsilon")
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="SamplingPlan"):
        sample_unipc(denoiser, x, plan.sigmas)
    with pytest.raises(ValueError, match="one per image"):
        sample_unipc(denoiser, x, plan, generators=[torch.Generator()])
    with pytest.raises(ValueError, match="start_step"):
        sample_unipc(denoiser, x, plan, start_step=len(plan))
