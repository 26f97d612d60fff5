"""Schedules, timestep spacings, sampling plans and parameterizations: golden parity with diffusers.

Diffusers keeps its schedule in float32 and ours is float64. Betas compare directly; where
diffusers' float32 cumprod would swamp the comparison (1 - abar_t near t = 0 cancels), its
scheduler is handed our float64 ``alphas_cumprod`` so that what is compared is the algorithm
(spacing, interpolation, Karras ramp, sigma -> t), to float32 rounding of its outputs.
"""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr as ref_rescale

from atelier.diffusion.parameterization import (
    PREDICTION_TYPES,
    predicted_eps,
    predicted_x0,
    q_sample,
    training_target,
)
from atelier.diffusion.plan import make_plan, start_step_for_strength
from atelier.diffusion.schedules import (
    alphas_cumprod,
    karras_sigmas,
    make_betas,
    rescale_zero_terminal_snr,
    sigma_to_t,
    sigmas_from_alphas_cumprod,
    spaced_timesteps,
)

REL = 1e-6
# Our name -> (diffusers' name, beta range both sides are given).
SCHEDULES = {
    "linear": ("linear", {"beta_start": 1e-4, "beta_end": 0.02}),
    "scaled_linear": ("scaled_linear", {"beta_start": 0.00085, "beta_end": 0.012}),
    "cosine": ("squaredcos_cap_v2", {}),
}


def max_rel(ours, ref, floor: float = 1e-12) -> float:
    """max |ours - ref| / (|ref| + floor): relative, without blowing up where ref is 0."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(np.asarray(ref)).double()
    assert ours.shape == ref.shape
    return ((ours - ref).abs() / (ref.abs() + floor)).max().item()


def ours_and_diffusers_abar(kind: str, zero_terminal_snr: bool = False):
    name, kwargs = SCHEDULES[kind]
    betas = make_betas(kind, 1000, zero_terminal_snr=zero_terminal_snr, **kwargs)
    return alphas_cumprod(betas), name, kwargs


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("n", [1000, 50])
def test_betas_match_diffusers(kind, n):
    name, kwargs = SCHEDULES[kind]
    ref = DDPMScheduler(num_train_timesteps=n, beta_schedule=name, **kwargs)
    betas = make_betas(kind, n, **kwargs)
    assert betas.dtype == torch.float64
    assert max_rel(betas, ref.betas) <= REL
    # float32 cumprod: 1000 roundings of 2^-24 each bound its relative error by ~6e-5.
    assert max_rel(alphas_cumprod(betas), ref.alphas_cumprod) <= 3e-5


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_zero_terminal_snr_matches_diffusers(kind):
    name, kwargs = SCHEDULES[kind]
    betas = make_betas(kind, 1000, **kwargs)
    ours, ref = rescale_zero_terminal_snr(betas), ref_rescale(betas.clone())
    assert max_rel(ours, ref) <= 1e-10  # both float64; 1 - abar_0 cancels in beta_0
    abar = alphas_cumprod(make_betas(kind, 1000, zero_terminal_snr=True, **kwargs))
    assert abar[-1] == 0
    assert abar[0] == pytest.approx(float(alphas_cumprod(betas)[0]), rel=1e-12)


def test_zero_terminal_snr_first_sigma_is_finite_as_in_diffusers():
    abar, name, kwargs = ours_and_diffusers_abar("scaled_linear", zero_terminal_snr=True)
    ref = EulerDiscreteScheduler(
        beta_schedule=name, timestep_spacing="trailing", rescale_betas_zero_snr=True, **kwargs
    )
    ref.set_timesteps(10)
    plan = make_plan(abar, 10, spacing="trailing")
    assert torch.isfinite(plan.sigmas).all()
    assert max_rel(plan.sigmas[0], ref.sigmas[0]) <= REL  # sqrt(2^24 - 1), about 4096
    assert max_rel(plan.timesteps, ref.timesteps) == 0


STEP_COUNTS = [1, 7, 10, 25, 48, 50, 96, 100, 250, 999, 1000]


@pytest.mark.parametrize("steps", STEP_COUNTS)
@pytest.mark.parametrize("steps_offset", [0, 1])
def test_leading_spacing_matches_ddim(steps, steps_offset):
    ref = DDIMScheduler(timestep_spacing="leading", steps_offset=steps_offset)
    ref.set_timesteps(steps)
    ours = spaced_timesteps(1000, steps, "leading", steps_offset=steps_offset)
    assert torch.equal(ours, ref.timesteps.double())


@pytest.mark.parametrize("steps", [*STEP_COUNTS, 61, 103])
def test_trailing_spacing_matches_ddim(steps):
    ref = DDIMScheduler(timestep_spacing="trailing")
    ref.set_timesteps(steps)
    ours = spaced_timesteps(1000, steps, "trailing")
    assert len(ours) == steps
    # For 61 and 103 steps diffusers' float arange overshoots by one extra step at t = -1.
    assert torch.equal(ours, ref.timesteps[:steps].double())
    assert ours.min() >= 0


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_linspace_spacing_matches_euler(steps):
    ref = EulerDiscreteScheduler(timestep_spacing="linspace")
    ref.set_timesteps(steps)
    ours = spaced_timesteps(1000, steps, "linspace")
    assert max_rel(ours, ref.timesteps, floor=1e-6) <= REL


def euler_with_our_schedule(abar: torch.Tensor, name: str, kwargs: dict, **config):
    """An EulerDiscreteScheduler computing from our float64 alphas_cumprod (see module doc)."""
    ref = EulerDiscreteScheduler(beta_schedule=name, **kwargs, **config)
    ref.alphas_cumprod = torch.where(abar > 0, abar, 2.0**-24)
    return ref


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("final_sigma", ["zero", "sigma_min"])
@pytest.mark.parametrize("steps", [1, 7, 25, 50])
def test_plan_sigmas_match_euler(kind, spacing, final_sigma, steps):
    abar, name, kwargs = ours_and_diffusers_abar(kind)
    offset = 1 if spacing == "leading" else 0
    ref = euler_with_our_schedule(
        abar,
        name,
        kwargs,
        timestep_spacing=spacing,
        steps_offset=offset,
        final_sigmas_type=final_sigma,
    )
    ref.set_timesteps(steps)
    plan = make_plan(abar, steps, spacing=spacing, steps_offset=offset, final_sigma=final_sigma)
    assert max_rel(plan.sigmas, ref.sigmas) <= REL
    assert max_rel(plan.timesteps, ref.timesteps, floor=1e-6) <= REL


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("steps", [2, 10, 30])
def test_karras_plan_matches_euler(kind, spacing, steps):
    abar, name, kwargs = ours_and_diffusers_abar(kind)
    ref = euler_with_our_schedule(
        abar, name, kwargs, timestep_spacing=spacing, use_karras_sigmas=True
    )
    ref.set_timesteps(steps)
    plan = make_plan(abar, steps, spacing=spacing, karras=True)
    assert max_rel(plan.sigmas, ref.sigmas) <= REL
    assert max_rel(plan.timesteps, ref.timesteps, floor=1e-6) <= REL


def test_plan_matches_stock_euler_in_float32():
    """Unaided diffusers, float32 schedule and all: the sigmas agree to its cumprod's precision."""
    abar, name, kwargs = ours_and_diffusers_abar("scaled_linear")
    for karras in (False, True):
        ref = EulerDiscreteScheduler(beta_schedule=name, use_karras_sigmas=karras, **kwargs)
        ref.set_timesteps(30)
        plan = make_plan(abar, 30, karras=karras)
        assert max_rel(plan.sigmas, ref.sigmas) <= 3e-5


def test_karras_sigmas_match_diffusers_ramp():
    ref = EulerDiscreteScheduler()
    in_sigmas = torch.tensor([14.6146, 0.0292])
    ours = karras_sigmas(float(in_sigmas[-1]), float(in_sigmas[0]), 20)
    assert max_rel(ours, ref._convert_to_karras(in_sigmas, 20)) <= 1e-12


def test_sigma_to_t_matches_diffusers():
    abar, _, _ = ours_and_diffusers_abar("scaled_linear")
    log_sigmas = sigmas_from_alphas_cumprod(abar).log()
    # Spans the table and both ends beyond it, where t clamps to 0 and T - 1.
    sigmas = torch.cat([torch.logspace(-2.5, 1.3, 257, dtype=torch.float64), torch.tensor([0.0])])
    ref = EulerDiscreteScheduler()._sigma_to_t(sigmas.numpy(), log_sigmas.numpy())
    assert max_rel(sigma_to_t(sigmas, log_sigmas), ref, floor=1e-6) <= 1e-12
    assert sigma_to_t(torch.tensor(1e-4), log_sigmas) == 0
    assert sigma_to_t(torch.tensor(1e3), log_sigmas) == 999


# Parameterizations ----------------------------------------------------------------------------


def random_pair(seed: int = 0, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    abar = torch.rand(shape[0], generator=g, dtype=torch.float64) * 0.9 + 0.05
    return x0, noise, abar


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_parameterization_round_trip(kind):
    x0, noise, abar = random_pair()
    x_t = q_sample(x0, abar, noise)
    output = training_target(kind, x0, noise, abar)
    x0_hat = predicted_x0(kind, output, x_t, abar)
    eps_hat = predicted_eps(kind, output, x_t, abar)
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_hat, noise, rtol=0, atol=1e-12)
    for other in PREDICTION_TYPES:
        converted = training_target(other, x0_hat, eps_hat, abar)
        torch.testing.assert_close(converted, training_target(other, x0, noise, abar))


def test_v_is_alpha_eps_minus_sigma_x0():
    x0, noise, abar = random_pair(1)
    a = abar.reshape(-1, 1, 1, 1)
    v = training_target("v_prediction", x0, noise, abar)
    torch.testing.assert_close(v, a.sqrt() * noise - (1 - a).sqrt() * x0)


def test_q_sample_and_velocity_match_ddpm():
    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    abar = alphas_cumprod(make_betas("scaled_linear"))
    x0, noise, _ = random_pair(2)
    x0, noise = x0.float(), noise.float()
    t = torch.tensor([0, 250, 600, 999])
    torch.testing.assert_close(
        q_sample(x0, abar[t], noise), ref.add_noise(x0, noise, t), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(
        training_target("v_prediction", x0, noise, abar[t]),
        ref.get_velocity(x0, noise, t),
        rtol=0,
        atol=1e-5,
    )


def test_q_sample_moments():
    g = torch.Generator().manual_seed(3)
    n, abar = 200_000, torch.tensor(0.3, dtype=torch.float64)
    x0 = torch.full((n,), 0.7, dtype=torch.float64)
    x_t = q_sample(x0, abar, torch.randn(n, generator=g, dtype=torch.float64))
    sem = (1 - abar).sqrt() / n**0.5  # standard error of the mean
    assert abs(x_t.mean() - abar.sqrt() * 0.7) < 5 * sem
    assert abs(x_t.var() - (1 - abar)) < 0.01


# Validation -----------------------------------------------------------------------------------


def test_unknown_schedule_names_choices():
    with pytest.raises(ValueError, match="linear, scaled_linear, cosine"):
        make_betas("quadratic")
    with pytest.raises(ValueError, match="at least 1"):
        make_betas("linear", 0)


def test_unknown_spacing_names_choices():
    with pytest.raises(ValueError, match="leading, trailing, linspace"):
        spaced_timesteps(1000, 10, "uniform")


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_bad_step_counts(steps):
    with pytest.raises(ValueError, match="steps"):
        spaced_timesteps(1000, steps, "leading")
    with pytest.raises(ValueError, match="steps"):
        make_plan(alphas_cumprod(make_betas("linear")), steps)


def test_unknown_prediction_type_names_choices():
    x0, noise, abar = random_pair()
    with pytest.raises(ValueError, match="epsilon, sample, v_prediction"):
        training_target("score", x0, noise, abar)


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "0.5"])
def test_strength_outside_unit_interval(strength):
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        start_step_for_strength(10, strength)


def test_strength_maps_to_start_step():
    assert start_step_for_strength(10, 1.0) == 0
    assert start_step_for_strength(10, 0.3) == 7
    with pytest.raises(ValueError, match="runs no step"):
        start_step_for_strength(10, 0.0)
