"""Heun: golden parity with diffusers' HeunDiscreteScheduler, batch invariance, bad arguments."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import HeunDiscreteScheduler

from atelier.diffusion.samplers.heun import sample_heun
from tests.diffusion.parity import (
    REL,
    run_diffusers,
    run_ours,
)
from tests.numerics import assert_close_to


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
    assert_close_to(ours, ref, rel=REL)
