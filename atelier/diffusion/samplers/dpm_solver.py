"""DPM-Solver++(2M) and its SDE variant (Lu et al. 2022, "DPM-Solver++", Algorithm 2).

Notation: lambda = log(alpha_t / sigma_t) is the VP latent's half log-SNR, which in the VE view is
simply -log sigma. A step goes from lambda_i to lambda_{i+1} with h_i = lambda_{i+1} - lambda_i
(so e^{-h_i} = sigma_{i+1} / sigma_i), and D_i = D(x_i, sigma_i) is the data prediction. The
multistep update reuses the previous step's prediction, with r_i = h_{i-1} / h_i:

    D = D_i + (D_i - D_{i-1}) / (2 r_i)            (D_i alone on a first-order step)
    ODE:  x_{i+1} = e^{-h} x_i + (1 - e^{-h}) D
    SDE:  x_{i+1} = e^{-2h} x_i + (1 - e^{-2h}) D + sigma_{i+1} sqrt(1 - e^{-2h}) z

which are the VP updates of the paper (and of diffusers' "dpmsolver++" / "sde-dpmsolver++",
solver_type "midpoint") divided by alpha_{i+1}. The SDE variant solves the reverse diffusion SDE
with the same multistep data prediction (Lu et al.'s SDE-DPM-Solver++(2M), as diffusers ships it).
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

# Below this many steps the last step is first order even when it does not end at sigma = 0
# (diffusers' lower_order_final, "for numerical stability with few steps").
LOWER_ORDER_FINAL_BELOW = 15


def _sample_dpmpp_2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    generators: Generators,
    callback: Callback | None,
    start_step: int,
    *,
    sde: bool,
) -> torch.Tensor:
    tail = check_inputs(x, plan, generators, start_step)
    # Judged on the whole schedule, as diffusers does, also when img2img runs only its tail.
    short = len(plan) < LOWER_ORDER_FINAL_BELOW
    plan = tail
    lambdas = -plan.sigmas.log()  # (N + 1,) float64; +inf at sigma = 0
    denoised_prev = None
    for i in range(len(plan)):
        sigma, t = sigma_at(plan, i, x)
        denoised = denoiser(x, sigma, t)
        h = lambdas[i + 1] - lambdas[i]
        # A second-order step into sigma = 0 is undefined (h is infinite, so r = 0).
        final = i == len(plan) - 1 and (plan.sigmas[-1] == 0 or short)
        if denoised_prev is None or final:
            d = denoised
        else:
            r = (lambdas[i] - lambdas[i - 1]) / h
            d = denoised + (denoised - denoised_prev) * float(1 / (2 * r))
        if sde:
            # Drawn on every step, the last (sigma_{i+1} = 0) too, as diffusers does: the
            # generators then advance exactly as in its scheduler.
            z = noise_like(x, generators)
            x = (
                float((-2 * h).exp()) * x
                - float((-2 * h).expm1()) * d
                + float(plan.sigmas[i + 1] * (-(-2 * h).expm1()).sqrt()) * z
            )
        else:
            x = float((-h).exp()) * x - float((-h).expm1()) * d
        denoised_prev = denoised
        if callback is not None:
            callback(StepInfo(i, len(plan), x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """DPM-Solver++(2M) ODE sampler, Lu et al. 2022 "DPM-Solver++" (Algorithm 2)."""
    return _sample_dpmpp_2m(denoiser, x, plan, generators, callback, start_step, sde=False)


@torch.no_grad()
def sample_dpmpp_2m_sde(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """SDE-DPM-Solver++(2M) stochastic sampler, after Lu et al. 2022 "DPM-Solver++"."""
    return _sample_dpmpp_2m(denoiser, x, plan, generators, callback, start_step, sde=True)
