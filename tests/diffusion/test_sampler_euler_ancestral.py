"""Euler ancestral: golden parity with diffusers' EulerAncestralDiscreteScheduler, batch
invariance, bad arguments."""

import math

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler

from atelier.diffusion.samplers.euler import sample_euler
from atelier.diffusion.samplers.euler_ancestral import sample_euler_ancestral
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
    scheduler = EulerAncestralDiscreteScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    ref = run_diffusers(scheduler, steps, stochastic=True)
    ours = run_ours(sample_euler_ancestral, scheduler, prediction_type, stochastic=True)
    assert_close_to(ours, ref, rel=REL)


def test_eta_zero_is_euler():
    denoiser, x, plan = toy_setup(spacing="linspace")
    ours = sample_euler_ancestral(denoiser, x, plan, eta=0.0)
    assert_close_to(ours, sample_euler(denoiser, x, plan), rel=REL)


def test_generators_advance_like_diffusers():
    """Like diffusers: one draw per step, the last (no noise added) too."""
    denoiser, x, plan = toy_setup(spacing="linspace")
    used = generators()
    sample_euler_ancestral(denoiser, x, plan, generators=used)
    expected = generators()
    for g in expected:
        for _ in range(len(plan)):
            torch.randn(SHAPE[1:], generator=g)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(used, expected))


@pytest.mark.parametrize("eta", [-0.1, math.nan, math.inf])
def test_bad_eta_raises(eta):
    denoiser, x, plan = toy_setup(spacing="linspace")
    with pytest.raises(ValueError, match="eta"):
        sample_euler_ancestral(denoiser, x, plan, eta=eta)
