"""Ancestral DDPM sampling with the posterior variance (Ho et al. 2020, Algorithm 2).

Each step draws x_{t'} ~ q(x_{t'} | x_t, x_0) with x_0 the denoiser's estimate, t' the next planned
timestep. Spaced timesteps make the step's beta_t = 1 - abar_t / abar_{t'} (Nichol & Dhariwal 2021,
"respacing"). In the VE view, with sigma = sigma_t, sigma' = sigma_{t'} and r = sigma'^2 / sigma^2,
that posterior is a Brownian bridge from x_0 to x:

    x' = x_0 + r (x - x_0) + sigma' sqrt(1 - r) z,    z ~ N(0, I),

which is the VP posterior mean and variance ("fixed_small") divided by sqrt(abar_{t'}).
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers.base import (
    Callback,
    Generators,
    StepInfo,
    check_inputs,
    noise_like,
    sigma_at,
)


@torch.no_grad()
def sample_ddpm(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """Ancestral DDPM sampler, Ho et al. 2020 "Denoising Diffusion Probabilistic Models"."""
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        sigma_next = plan.sigmas[i + 1]
        denoised = denoiser(x, sigma, t)
        r = (sigma_next / plan.sigmas[i]) ** 2
        x = denoised + r.to(x.dtype) * (x - denoised)
        # Algorithm 2 draws z only while t > 0, as diffusers does, so generators advance exactly as
        # in its scheduler; a last step from t > 0 to sigma' = 0 (steps_offset) draws with std 0.
        if plan.timesteps[i] > 0:
            x = x + (sigma_next * (1 - r).sqrt()).to(x.dtype) * noise_like(x, generators)
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
