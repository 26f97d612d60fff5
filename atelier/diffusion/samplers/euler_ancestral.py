"""Euler ancestral sampling (k-diffusion; Karras et al. 2022, Sec. 4 on stochastic sampling).

From sigma to the next planned sigma', the step splits sigma' into a deterministic part sigma_down
and fresh noise sigma_up, sigma_down^2 + sigma_up^2 = sigma'^2, with

    sigma_up = min(sigma', eta sigma' sqrt(1 - sigma'^2 / sigma^2)),

takes an Euler step of the probability-flow ODE from sigma to sigma_down and adds sigma_up z.
eta = 1 adds the DDPM posterior's noise (Ho et al. 2020); eta = 0 is plain Euler.
"""

from __future__ import annotations

import math

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


def ancestral_step(
    sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_down, sigma_up) for a step from sigma to sigma_next (k-diffusion's convention)."""
    sigma_up = (eta * sigma_next * (1 - (sigma_next / sigma) ** 2).sqrt()).clamp(max=sigma_next)
    return (sigma_next**2 - sigma_up**2).sqrt(), sigma_up


@torch.no_grad()
def sample_euler_ancestral(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
    eta: float = 1.0,
) -> torch.Tensor:
    """Euler ancestral sampler, Karras et al. 2022 "Elucidating the design space" (k-diffusion)."""
    if not (math.isfinite(eta) and eta >= 0.0):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        denoised = denoiser(x, sigma, t)
        sigma_down, sigma_up = ancestral_step(plan.sigmas[i], plan.sigmas[i + 1], eta)
        d = (x - denoised) / sigma.to(x.dtype)  # dx/dsigma of the probability-flow ODE
        x = x + d * (sigma_down - plan.sigmas[i]).to(x.dtype)
        # Drawn on every step, the last (sigma_up = 0) too, as diffusers does: the generators then
        # advance exactly as in its scheduler.
        if eta > 0:
            x = x + sigma_up.to(x.dtype) * noise_like(x, generators)
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
