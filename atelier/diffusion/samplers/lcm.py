"""Multistep latent consistency sampling (Luo et al. 2023, "Latent Consistency Models",
Algorithm 3; Song et al. 2023, "Consistency Models", Algorithm 1).

Each step maps x at sigma_i to the trajectory's origin with the consistency function f
(``diffusion/consistency.py``) and noises that estimate afresh to the next planned level:

    x_0 = f(x_i, t_i),    x_{i+1} = x_0 + sigma_{i+1} z,    z ~ N(0, I),

the VE form of LCM's x_{i+1} = sqrt(abar_{i+1}) x_0 + sqrt(1 - abar_{i+1}) z. No noise is drawn
into sigma = 0, so one step is f itself, and the generators advance as in diffusers'
LCMScheduler. Meant for a distilled consistency model on the ``lcm`` timestep spacing, whose
steps fall on the grid it was distilled on.
"""

from __future__ import annotations

import torch

from atelier.diffusion.consistency import consistency_output
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
def sample_lcm(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """Multistep consistency sampler, Luo et al. 2023 "Latent Consistency Models"."""
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        x0 = consistency_output(x, sigma, t, denoiser(x, sigma, t))
        sigma_next = plan.sigmas[i + 1]
        x = x0 + sigma_next.to(x.dtype) * noise_like(x0, generators) if sigma_next > 0 else x0
        if callback is not None:
            callback(StepInfo(i, len(plan), x, x0, float(sigma), float(sigma_next)))
    return x
