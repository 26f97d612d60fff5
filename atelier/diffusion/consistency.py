"""The consistency parameterisation (Song et al. 2023, "Consistency Models"; Luo et al. 2023,
"Latent Consistency Models").

A consistency function maps every point of a probability-flow ODE trajectory to its origin,
f(x_t, t) = x_0 for all t, with the boundary condition f(x, 0) = x. LCM builds it from a
network's x_0 estimate x0_pred (whatever its prediction type; ``parameterization.py``) as

    f(x_t, t) = c_skip(t) x_t + c_out(t) x0_pred(x_t, t),
    c_skip(t) = sigma_data^2 / ((s t)^2 + sigma_data^2),
    c_out(t)  = s t / sqrt((s t)^2 + sigma_data^2),

on the discrete timestep t (0 .. T - 1) scaled by s, with sigma_data = 0.5 and s = 10. At t = 0
c_skip = 1 and c_out = 0, the boundary condition; from t = 1 on c_skip <= 0.0025, so f is nearly
the x_0 estimate wherever a sampler uses it. x_t is the VP latent: in the VE view the samplers
work in (``schedules.py``), x_t = x / sqrt(1 + sigma^2).
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import per_image
from atelier.diffusion.parameterization import broadcast

SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0


def boundary_scalings(t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip(t), c_out(t)) in float64, shaped like ``t``: LCM's boundary-condition scalings."""
    scaled = torch.as_tensor(t, dtype=torch.float64) * TIMESTEP_SCALING
    denominator = scaled**2 + SIGMA_DATA**2
    return SIGMA_DATA**2 / denominator, scaled / denominator.sqrt()


def consistency_output(
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    t: torch.Tensor | float,
    denoised: torch.Tensor,
) -> torch.Tensor:
    """f at the VE latent ``x`` of noise level ``sigma`` and timestep ``t`` (scalars or per image
    (B,)), from the denoiser's x_0 estimate ``denoised`` there; like ``x`` in dtype."""
    sigma = per_image(sigma, x).to(torch.float64)
    c_skip, c_out = boundary_scalings(per_image(t, x).to(torch.float64))  # (B,), (B,)
    alpha = (1 + sigma**2).rsqrt()  # x_t = alpha x
    return broadcast(c_skip * alpha, x) * x + broadcast(c_out, x) * denoised
