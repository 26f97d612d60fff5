"""Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn)."""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers.base import Callback, Generators, StepInfo, check_inputs, sigma_at


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """Euler (first-order) ODE sampler, Karras et al. 2022 "Elucidating the design space"."""
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        denoised = denoiser(x, sigma, t)
        d = (x - denoised) / sigma.to(x.dtype)  # dx/dsigma of the probability-flow ODE
        x = x + d * (plan.sigmas[i + 1] - plan.sigmas[i]).to(x.dtype)
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
