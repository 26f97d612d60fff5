"""DDIM sampling with stochasticity eta (Song et al. 2021, eq. 12 and 16).

DDIM's step from timestep t to the next planned t' is

    x_{t'} = sqrt(abar_{t'}) x_0 + sqrt(1 - abar_{t'} - s_t^2) eps + s_t z,
    s_t = eta sqrt((1 - abar_{t'}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t'}):

eta = 0 is the deterministic DDIM, eta = 1 the DDPM posterior. In the VE view (sigma = sigma_t,
sigma' = sigma_{t'}, r = sigma'^2 / sigma^2, eps = (x - x_0) / sigma) the same step reads

    x' = x_0 + sigma_down eps + sigma_up z,
    sigma_up = eta sigma' sqrt(1 - r),   sigma_down = sqrt(sigma'^2 - sigma_up^2),

with sigma_up = s_t / sqrt(abar_{t'}) (k-diffusion's names, to keep DDIM's s_t apart from sigma).
"""

from __future__ import annotations

import math

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.parameterization import broadcast
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers.base import (
    Callback,
    Generators,
    StepInfo,
    check_inputs,
    noise_like,
    sigma_at,
)


def ddim_step(
    x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> torch.Tensor:
    """DDIM's deterministic step (eta 0) in the VE view: x' = x_0 + sigma' eps, eps = (x - x_0) /
    sigma. ``sigma`` and ``sigma_next`` are scalars or per-image (B,); the latent consistency
    distillation's ODE solver takes this step from each image's own t_{n+k} to t_n."""
    eps = (x - denoised) / broadcast(sigma, x)
    return denoised + broadcast(sigma_next, x) * eps


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM sampler, Song et al. 2021 "Denoising Diffusion Implicit Models"."""
    # Above 1 the added noise would exceed sigma' for large steps (sqrt of a negative variance).
    if not (math.isfinite(eta) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must be in [0, 1] (0 is DDIM, 1 the DDPM posterior), got {eta}")
    plan = check_inputs(x, plan, generators, start_step)
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        sigma_next = plan.sigmas[i + 1]
        denoised = denoiser(x, sigma, t)
        r = (sigma_next / plan.sigmas[i]) ** 2
        sigma_up = eta * sigma_next * (1 - r).sqrt()
        sigma_down = sigma_next * (1 - eta**2 * (1 - r)).sqrt()
        x = ddim_step(x, denoised, sigma, sigma_down)
        # Drawn on every step, the last (sigma_up = 0) too, as diffusers does: the generators then
        # advance exactly as in its scheduler.
        if eta > 0:
            x = x + sigma_up.to(x.dtype) * noise_like(x, generators)
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
