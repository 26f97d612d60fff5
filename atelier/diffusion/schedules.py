"""Noise schedules as pure functions, computed in float64.

Notation (Ho et al. 2020; Karras et al. 2022): ``betas[t]`` is the per-step noise variance of the
discrete forward chain, t = 0 .. T-1; ``alphas_cumprod[t]`` = prod_{s<=t} (1 - betas[s]) = abar_t.
The variance-preserving (VP) latent is x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. Its
variance-exploding (VE) view divides by sqrt(abar_t): x = x_0 + sigma eps with
sigma_t = sqrt((1 - abar_t) / abar_t). Samplers work in the VE view, as k-diffusion does.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import torch

BetaSchedule = Literal["linear", "scaled_linear", "cosine"]
TimestepSpacing = Literal["leading", "trailing", "linspace", "lcm"]
BETA_SCHEDULES: tuple[str, ...] = get_args(BetaSchedule)
TIMESTEP_SPACINGS: tuple[str, ...] = get_args(TimestepSpacing)


def linear_betas(n: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linearly spaced betas (Ho et al. 2020)."""
    return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)


def scaled_linear_betas(
    n: int, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """Linear in sqrt(beta), Stable Diffusion's schedule."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2


def cosine_betas(n: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal 2021: abar(t) = cos^2((t/T + s)/(1 + s) pi/2)."""

    def abar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return torch.tensor(
        [min(1 - abar((i + 1) / n) / abar(i / n), max_beta) for i in range(n)], dtype=torch.float64
    )


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(abar) so the last step has zero SNR (Lin et al. 2024, Algorithm 1)."""
    sqrt_abar = torch.cumprod(1 - betas.double(), 0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    sqrt_abar = (sqrt_abar - last) * first / (first - last)
    abar = sqrt_abar**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


def make_betas(
    kind: BetaSchedule,
    n: int = 1000,
    *,
    beta_start: float | None = None,
    beta_end: float | None = None,
    zero_terminal_snr: bool = False,
) -> torch.Tensor:
    """Betas for a named schedule; raises ValueError naming the valid choices."""
    if n < 1:
        raise ValueError(f"a schedule needs at least 1 training step, got {n}")
    kwargs = {
        k: v for k, v in (("beta_start", beta_start), ("beta_end", beta_end)) if v is not None
    }
    if kind == "linear":
        betas = linear_betas(n, **kwargs)
    elif kind == "scaled_linear":
        betas = scaled_linear_betas(n, **kwargs)
    elif kind == "cosine":
        betas = cosine_betas(n)
    else:
        raise ValueError(f"unknown beta schedule {kind!r}; valid: {', '.join(BETA_SCHEDULES)}")
    return rescale_zero_terminal_snr(betas) if zero_terminal_snr else betas


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s), float64."""
    return torch.cumprod(1 - betas.double(), 0)


# The VE noise level standing in for a zero-terminal-SNR schedule's infinite sigma_T (below).
ZERO_SNR_SIGMA = ((1 - 2.0**-24) / 2.0**-24) ** 0.5


def sigmas_from_alphas_cumprod(abar: torch.Tensor) -> torch.Tensor:
    """VE noise levels sigma_t = sqrt((1 - abar_t) / abar_t)."""
    abar = abar.double()
    # A zero-terminal-SNR schedule has abar_T = 0 exactly, an infinite sigma no VE sampler can
    # start from; like diffusers, stand in the smallest fp16 subnormal (sigma_T ~ 4096).
    abar = torch.where(abar > 0, abar, 2.0**-24)
    return ((1 - abar) / abar).sqrt()


# N of the skipping-step grid a latent consistency model is distilled on and sampled from: the
# ODE solver steps k = T / N timesteps at a time (Luo et al. 2023, Sec. 4.3; diffusers'
# ``original_inference_steps``), so k = 20 for T = 1000.
LCM_SOLVER_STEPS = 50


def skipping_timesteps(n_train: int, solver_steps: int = LCM_SOLVER_STEPS) -> torch.Tensor:
    """The skipping-step grid, ascending (float64): k - 1, 2k - 1, ..., N k - 1 with
    k = n_train // N, the timesteps t_{n+k} a consistency model is distilled at."""
    if not 1 <= solver_steps <= n_train:
        raise ValueError(f"solver steps must be in [1, {n_train}], got {solver_steps}")
    k = n_train // solver_steps
    return torch.arange(1, solver_steps + 1, dtype=torch.float64) * k - 1


def spaced_timesteps(
    n_train: int, n_steps: int, spacing: TimestepSpacing, *, steps_offset: int = 0
) -> torch.Tensor:
    """The ``n_steps`` training timesteps a sampler visits, descending (float64).

    ``leading``: 0, r, 2r, ... with r = n_train // n_steps (plus ``steps_offset``); ``trailing``:
    rounded n_train, n_train - r, ... minus one, so the first step is at T - 1; ``linspace``: evenly
    from T - 1 to 0, fractional (Lin et al. 2024, Table 2). ``lcm``: evenly spaced indices into
    the skipping-step grid, descending from T - 1, so every step is at a timestep a latent
    consistency model was distilled at (as diffusers' LCMScheduler picks them).
    """
    if n_steps < 1:
        raise ValueError(f"steps must be at least 1, got {n_steps}")
    if n_steps > n_train:
        raise ValueError(f"steps ({n_steps}) cannot exceed the {n_train} training timesteps")
    if spacing == "linspace":
        return torch.linspace(0, n_train - 1, n_steps, dtype=torch.float64).flip(0)
    if spacing == "lcm":
        grid = skipping_timesteps(n_train, min(LCM_SOLVER_STEPS, n_train)).flip(0)
        if n_steps > len(grid):
            raise ValueError(f"lcm spacing takes at most {len(grid)} steps (its skipping-step "
                             f"grid), got {n_steps}")  # fmt: skip
        picks = np.floor(np.linspace(0, len(grid), n_steps, endpoint=False)).astype(np.int64)
        return grid[torch.from_numpy(picks)]
    if spacing == "leading":
        ratio = n_train // n_steps
        return (torch.arange(n_steps, dtype=torch.float64) * ratio).round().flip(0) + steps_offset
    if spacing == "trailing":
        ratio = n_train / n_steps
        # numpy's arange, as diffusers uses: its float error decides which way the .5 ties of
        # e.g. 48 steps round. It can also overshoot by one value (61 steps over 1000 would end
        # at t = -1), hence the cut.
        steps = np.arange(n_train, 0, -ratio)[:n_steps]
        return torch.from_numpy(steps).round() - 1
    raise ValueError(f"unknown timestep spacing {spacing!r}; valid: {', '.join(TIMESTEP_SPACINGS)}")


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, eq. 5: (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def sigma_to_t(sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """Fractional timestep of a VE noise level, linear in log sigma (as k-diffusion does)."""
    log_sigma = sigma.double().clamp(min=1e-10).log()
    dists = log_sigma[..., None] - log_sigmas  # (..., T)
    low = (dists >= 0).cumsum(-1).argmax(-1).clamp(max=log_sigmas.shape[0] - 2)
    lo, hi = log_sigmas[low], log_sigmas[low + 1]
    w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)
