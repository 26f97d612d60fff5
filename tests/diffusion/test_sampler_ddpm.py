"""DDPM: golden parity with diffusers' DDPMScheduler, batch invariance, bad arguments."""

import pytest
import torch
from diffusers import DDPMScheduler

from atelier.diffusion.samplers.ddpm import sample_ddpm
from tests.diffusion.parity import (
    REL,
    SHAPE,
    generators,
    run_diffusers,
    run_ours,
    toy_setup,
)
from tests.numerics import assert_close_to


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(prediction_type, steps):
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        variance_type="fixed_small",
        clip_sample=False,
        prediction_type=prediction_type,
    )
    # DDPMScheduler forms its step coefficients (1 - abar_t / abar_prev, ...) from float32 scalars;
    # that cancellation alone moves its 50-step epsilon sample by ~2e-4 (the toy model's samples
    # reach |x| ~ 60), while ours forms them in float64. Holding the same table values in float64
    # removes only that error: the latent arithmetic stays float32, as in diffusers.
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    scheduler.one = scheduler.one.double()
    ref = run_diffusers(scheduler, steps, stochastic=True)
    ours = run_ours(sample_ddpm, scheduler, prediction_type, stochastic=True)
    assert_close_to(ours, ref, rel=REL)


def test_generators_advance_like_diffusers():
    """As Ho et al.'s Algorithm 2 and diffusers: one draw per step with t > 0 (not the last)."""
    denoiser, x, plan = toy_setup(spacing="leading")
    used = generators()
    sample_ddpm(denoiser, x, plan, generators=used)
    expected = generators()
    for g in expected:
        for _ in range(len(plan) - 1):
            torch.randn(SHAPE[1:], generator=g)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(used, expected))
