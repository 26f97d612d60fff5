"""Shared harness for golden parity against diffusers 0.42 schedulers.

The same network function and the same initial noise (and per-image generators, for stochastic
samplers) go through a diffusers scheduler loop and through ours; final samples must agree to
max |delta| <= REL * max |reference| (``tests/numerics.py``).
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.plan import plan_from_timesteps
from atelier.diffusion.schedules import alphas_cumprod, make_betas

# Diffusers keeps its sigma tables in float32 and most of its schedulers cast the latent to float32
# inside step(), so the reference cannot run in float64; both loops round in float32, and the gap
# grows with the samples' size (the toy model's epsilon samples reach |x| ~ 70, its v-prediction
# ones ~2). Measured on every sampler here, on 1 and 2 threads: max |delta| <= 1.6e-6 of the scale.
REL = 1e-5
SHAPE = (4, 3, 8, 8)
SEEDS = [11, 12, 13, 14]


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth, time-dependent stand-in for a network (bounded, so every sampler is stable)."""
    tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1))) / 1000.0
    return 0.6 * torch.tanh(x) * torch.cos(tt * 1.3) + 0.2 * torch.sin(3 * x + tt) - 0.1 * tt


def generators(seed_offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s + seed_offset) for s in SEEDS]


def initial_noise() -> torch.Tensor:
    return torch.stack([torch.randn(SHAPE[1:], generator=g) for g in generators(1000)])


def run_diffusers(scheduler, steps: int, *, stochastic: bool) -> torch.Tensor:
    """The standard diffusers denoising loop."""
    scheduler.set_timesteps(steps)
    x = initial_noise() * scheduler.init_noise_sigma
    # Only stochastic schedulers take a generator (Heun's and UniPC's step() have none).
    step_kwargs = {"generator": generators()} if stochastic else {}
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        out = toy_model(model_input, t.expand(x.shape[0]))
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x


def run_ours(sampler, scheduler, prediction_type: str, *, stochastic: bool, **options):
    """Our sampler on the diffusers scheduler's own timesteps and training schedule.

    Diffusers' sigma-based schedulers (Euler, Heun, ...) keep the VE latent, scaled by their own
    ``init_noise_sigma``; the others keep the VP latent, which is the VE one times
    1 / sqrt(1 + sigma_0^2). Either way both loops start from the same point.
    """
    abar = alphas_cumprod(make_betas("scaled_linear", 1000))
    plan = plan_from_timesteps(abar, torch.as_tensor(scheduler.timesteps, dtype=torch.float64))
    ve_state = float(scheduler.init_noise_sigma) != 1.0
    x = initial_noise() * (float(scheduler.init_noise_sigma) if ve_state else plan.init_noise_sigma)
    gens = generators() if stochastic else None
    denoiser = VPDenoiser(toy_model, prediction_type)
    return sampler(denoiser, x, plan, generators=gens, **options)


def toy_setup(steps: int = 10, spacing: str = "linspace"):
    """(denoiser, initial latent, plan) for sampler-specific tests on the toy network."""
    from atelier.diffusion.plan import make_plan

    plan = make_plan(alphas_cumprod(make_betas("scaled_linear")), steps, spacing=spacing)
    return VPDenoiser(toy_model, "epsilon"), initial_noise() * plan.init_noise_sigma, plan
