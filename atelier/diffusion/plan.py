"""A sampling plan: the noise levels a sampler visits and the timestep the network sees at each.

Samplers run in the VE view (x = x_0 + sigma eps; see ``schedules.py``). A plan holds N + 1
descending noise levels ``sigmas`` (the last is usually 0, the clean image), the network timestep
``timesteps[i]`` for each ``sigmas[i]``, and the training table of log-sigmas, so a sampler that
evaluates between planned levels can still name the timestep (log-sigma interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from atelier.diffusion.schedules import (
    TimestepSpacing,
    karras_sigmas,
    sigma_to_t,
    sigmas_from_alphas_cumprod,
    spaced_timesteps,
)

FinalSigma = Literal["zero", "sigma_min"]


@dataclass(frozen=True)
class SamplingPlan:
    """Noise levels (N + 1,) and network timesteps (N,), float64, for an N-step sampler."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    log_sigmas: torch.Tensor  # (T,) log sigma_t of the training schedule

    def __post_init__(self) -> None:
        if self.sigmas.ndim != 1 or self.timesteps.shape != (self.sigmas.shape[0] - 1,):
            raise ValueError("a plan needs N + 1 sigmas and N timesteps")
        if len(self.timesteps) < 1:
            raise ValueError("a plan needs at least one step")

    def __len__(self) -> int:
        return len(self.timesteps)

    @property
    def init_noise_sigma(self) -> float:
        """Scale of the initial noise: x_T = noise * sqrt(1 + sigma_0^2) matches the VP prior."""
        return float((1 + self.sigmas[0] ** 2).sqrt())

    def t_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """Network timestep of any noise level (log-sigma interpolation in the training table)."""
        return sigma_to_t(torch.as_tensor(sigma, dtype=torch.float64), self.log_sigmas)

    def tail(self, start_step: int) -> SamplingPlan:
        """The plan from step ``start_step`` on (img2img and inpainting start part-way)."""
        if not 0 <= start_step < len(self):
            raise ValueError(f"start_step must be in [0, {len(self) - 1}], got {start_step}")
        return SamplingPlan(self.sigmas[start_step:], self.timesteps[start_step:], self.log_sigmas)


def start_step_for_strength(n_steps: int, strength: float) -> int:
    """First step for img2img at ``strength`` in [0, 1]: 1 runs every step, 0.3 the last 30%."""
    if not (isinstance(strength, int | float) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    run = min(int(n_steps * strength), n_steps)
    if run == 0:
        raise ValueError(f"strength {strength} runs no step of {n_steps}; raise strength or steps")
    return n_steps - run


def plan_from_timesteps(
    alphas_cumprod: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    final_sigma: FinalSigma = "zero",
) -> SamplingPlan:
    """A plan visiting the given (possibly fractional) training timesteps, descending.

    Noise levels at fractional timesteps interpolate sigma linearly in t (as diffusers' Euler and
    Heun schedulers do); at integer timesteps they are exact table values.
    """
    table = sigmas_from_alphas_cumprod(alphas_cumprod)  # (T,)
    t = torch.as_tensor(timesteps, dtype=torch.float64).flatten()
    if (t < 0).any() or (t > len(table) - 1).any():
        raise ValueError(f"timesteps must lie in [0, {len(table) - 1}]")
    lo = t.floor().long().clamp(max=len(table) - 2)
    w = t - lo
    sigmas = (1 - w) * table[lo] + w * table[lo + 1]
    last = torch.zeros(1, dtype=torch.float64) if final_sigma == "zero" else table[:1]
    return SamplingPlan(torch.cat([sigmas, last]), t, table.log())


def make_plan(
    alphas_cumprod: torch.Tensor,
    n_steps: int,
    *,
    spacing: TimestepSpacing = "linspace",
    karras: bool = False,
    steps_offset: int = 0,
    final_sigma: FinalSigma = "zero",
) -> SamplingPlan:
    """The plan for ``n_steps`` steps with a timestep spacing, optionally Karras-spaced sigmas."""
    timesteps = spaced_timesteps(len(alphas_cumprod), n_steps, spacing, steps_offset=steps_offset)
    plan = plan_from_timesteps(alphas_cumprod, timesteps, final_sigma=final_sigma)
    if not karras:
        return plan
    sigmas = karras_sigmas(float(plan.sigmas[-2]), float(plan.sigmas[0]), n_steps)
    return SamplingPlan(torch.cat([sigmas, plan.sigmas[-1:]]), plan.t_of(sigmas), plan.log_sigmas)
