"""DDIM: golden parity with diffusers' DDIMScheduler, batch invariance, bad arguments."""

import functools
import math

import pytest
import torch
from diffusers import DDIMScheduler

from atelier.diffusion.samplers.ddim import sample_ddim
from tests.diffusion.parity import (
    REL,
    SHAPE,
    generators,
    run_diffusers,
    run_ours,
    toy_setup,
)
from tests.numerics import assert_close_to


@pytest.mark.parametrize("eta", [0.0, 0.5])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(prediction_type, steps, eta):
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=True,
        prediction_type=prediction_type,
    )
    # DDIMScheduler takes eta per step() call and the shared loop passes none, so bind it here.
    scheduler.step = functools.partial(scheduler.step, eta=eta)
    ref = run_diffusers(scheduler, steps, stochastic=eta > 0)
    ours = run_ours(sample_ddim, scheduler, prediction_type, stochastic=eta > 0, eta=eta)
    assert_close_to(ours, ref, rel=REL)


def test_generators_advance_like_diffusers():
    """Like diffusers with eta > 0: one draw per step, the last (no noise added) too."""
    denoiser, x, plan = toy_setup(spacing="leading")
    used = generators()
    sample_ddim(denoiser, x, plan, generators=used, eta=0.5)
    expected = generators()
    for g in expected:
        for _ in range(len(plan)):
            torch.randn(SHAPE[1:], generator=g)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(used, expected))


@pytest.mark.parametrize("eta", [-0.1, 1.5, math.nan, math.inf])
def test_bad_eta_raises(eta):
    denoiser, x, plan = toy_setup(spacing="leading")
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(denoiser, x, plan, eta=eta)
