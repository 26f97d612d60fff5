"""UniPC-2 with data prediction and B(h) = e^h - 1 (Zhao et al. 2023, "UniPC", bh2 variant).

Notation as in ``dpm_solver.py``: lambda = -log sigma in the VE view, h = lambda_{i+1} - lambda_i,
D_i = D(x_i, sigma_i). Every update has the form

    x_{i+1} = e^{-h} x_i + (1 - e^{-h}) (D_i + correction),

the VP update of the paper divided by alpha_{i+1}. The predictor UniP-p extrapolates from the
previous prediction, r = (lambda_{i-1} - lambda_i) / h (so r < 0):

    UniP-1: correction = 0;    UniP-2: correction = (D_{i-1} - D_i) / (2 r),

which makes UniP-2 the same step as DPM-Solver++(2M). After the next denoiser call, at the
predicted x_{i+1}, the corrector UniC-p redoes the step from x_i using D_{i+1} too, raising the
order by one at no extra call:

    UniC-1: correction = (D_{i+1} - D_i) / 2
    UniC-2: correction = rho_1 (D_{i-1} - D_i) / r + rho_2 (D_{i+1} - D_i),

rho solving [[1, 1], [r, 1]] rho = (b_1, b_2), b_k = k! h phi_{k+1}(h) / B(h) taken at -h (the
data-prediction form has e^{-h} where the noise-prediction one has e^h). The network is never
called on the corrected latent: D_{i+1} is kept, and the next predictor starts from the corrected
x_{i+1}. The first step is first order (no history), and so is the last (diffusers'
lower_order_final), which is also never corrected.
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers.base import Callback, Generators, StepInfo, check_inputs, sigma_at


def _exponential_step(x: torch.Tensor, h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """x' = e^{-h} x + (1 - e^{-h}) d: the exponential integrator at constant data prediction d."""
    return float((-h).exp()) * x - float((-h).expm1()) * d


def _corrector_rhos(h: torch.Tensor, r: torch.Tensor) -> tuple[float, float]:
    """(rho_1, rho_2) of UniC-2 with B(h) = e^h - 1, at step -h (data prediction)."""
    hh = -h
    b_h = hh.expm1()
    # h phi_{k+1}(h) from phi_{k+1}(h) = (phi_k(h) - 1/k!) / h, which cancels for small h (about
    # two digits at h = 0.1), so it stays in float64.
    h_phi_2 = b_h / hh - 1
    h_phi_3 = h_phi_2 / hh - 0.5
    b1, b2 = h_phi_2 / b_h, 2 * h_phi_3 / b_h
    rho_1 = (b1 - b2) / (1 - r)
    return float(rho_1), float(b1 - rho_1)


@torch.no_grad()
def sample_unipc(
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """UniPC (bh2, second order) predictor-corrector sampler, Zhao et al. 2023 "UniPC"."""
    plan = check_inputs(x, plan, generators, start_step)
    n = len(plan)
    lambdas = -plan.sigmas.log()  # (N + 1,) float64; +inf at sigma = 0
    history: list[torch.Tensor] = []  # D of the last two steps, oldest first
    x_prev, order_prev = x, 0
    for i in range(n):
        sigma, t = sigma_at(plan, i, x)
        denoised = denoiser(x, sigma, t)
        if i > 0:
            h = lambdas[i] - lambdas[i - 1]
            d_prev = history[-1]
            if order_prev == 1:
                correction = (denoised - d_prev) * 0.5
            else:
                r = (lambdas[i - 2] - lambdas[i - 1]) / h
                rho_1, rho_2 = _corrector_rhos(h, r)
                correction = (history[-2] - d_prev) * float(rho_1 / r) + (denoised - d_prev) * rho_2
            x = _exponential_step(x_prev, h, d_prev + correction)
        history = [*history, denoised][-2:]
        # First order without history, and on the last step: into sigma = 0 a second-order step
        # is undefined (h is infinite, r = 0), and diffusers' lower_order_final keeps it so for any
        # final sigma.
        order = min(2, i + 1, n - i)
        h = lambdas[i + 1] - lambdas[i]
        if order == 1:
            d = denoised
        else:
            r = (lambdas[i - 1] - lambdas[i]) / h
            d = denoised + (history[-2] - denoised) * float(0.5 / r)
        x_prev, order_prev = x, order
        x = _exponential_step(x, h, d)
        if callback is not None:
            callback(StepInfo(i, n, x, denoised, float(sigma), float(plan.sigmas[i + 1])))
    return x
