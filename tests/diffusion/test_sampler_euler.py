"""Euler: golden parity with diffusers' EulerDiscreteScheduler."""

import pytest
from diffusers import EulerDiscreteScheduler

from atelier.diffusion.samplers.euler import sample_euler
from tests.diffusion.parity import REL, run_diffusers, run_ours
from tests.numerics import assert_close_to


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(prediction_type, steps):
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    ref = run_diffusers(scheduler, steps, stochastic=False)
    ours = run_ours(sample_euler, scheduler, prediction_type, stochastic=False)
    assert_close_to(ours, ref, rel=REL)
