"""Heun's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn).

With d(x, sigma) = (x - D(x, sigma)) / sigma the ODE's slope dx/dsigma, a step from sigma_i to
sigma_{i+1} takes an Euler step to x' and averages the slopes at both ends:

    x' = x_i + (sigma_{i+1} - sigma_i) d(x_i, sigma_i)
    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d(x_i, sigma_i) + d(x', sigma_{i+1})) / 2,

two denoiser calls per step, except into sigma = 0, where d is undefined and the step stays Euler.

A step out of a zero-terminal-SNR schedule's first level (sigma_0 ~ 4096, standing in for
infinity) is Euler too: there the trapezoid weighs the slope at sigma_1 by sigma_0 / (2 sigma_1),
hundreds of times, and a guided denoiser's inconsistency between the two levels with it. On the
shipped model, Heun with 10 trailing steps passed 2% of shapes-bench prompts instead of ~45%.
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers.base import Callback, Generators, StepInfo, check_inputs, sigma_at
from atelier.diffusion.schedules import ZERO_SNR_SIGMA


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """Heun (second-order) ODE sampler, Karras et al. 2022 "Elucidating the design space"."""
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        sigma_next = plan.sigmas[i + 1]
        dt = (sigma_next - plan.sigmas[i]).to(x.dtype)
        denoised = denoiser(x, sigma, t)
        d = (x - denoised) / sigma.to(x.dtype)
        x_euler = x + d * dt
        if sigma_next == 0 or plan.sigmas[i] >= ZERO_SNR_SIGMA:
            x = x_euler
        else:
            # The planned timestep of sigma_{i+1} where there is one (diffusers evaluates there);
            # only a final sigma_min > 0 needs the interpolated one.
            if i + 1 < len(plan):
                sigma_next, t_next = sigma_at(plan, i + 1, x)
            else:
                sigma_next, t_next = sigma_next.to(x.device), plan.t_of(sigma_next).to(x.device)
            d_next = (x_euler - denoiser(x_euler, sigma_next, t_next)) / sigma_next.to(x.dtype)
            x = x + (d + d_next) / 2 * dt
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
