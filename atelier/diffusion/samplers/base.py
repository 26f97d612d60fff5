"""The one contract every sampler follows (after k-diffusion's ``sampling.py``).

    sample(denoiser, x, plan, *, generators=None, callback=None, start_step=0, **options) -> x_0

- ``denoiser(x, sigma, t) -> x_0 estimate`` (``diffusion/denoiser.py``); guidance wraps it or the
  network beneath it, so samplers never know guidance exists.
- ``x`` is the VE latent at ``plan.sigmas[start_step]``: pure noise times ``plan.init_noise_sigma``
  for text-to-image, or a noised image for img2img / inpainting.
- ``generators``: one ``torch.Generator`` per image. Every random draw for image b comes from
  ``generators[b]`` (shape of one image), so a batch equals the same images sampled one by one.
- ``callback(StepInfo)`` after every step, for progress bars, previews and cancellation.
- Returns the latent at ``plan.sigmas[-1]`` (the clean sample when that is 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from atelier.diffusion.plan import SamplingPlan


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after step ``i`` of ``total``."""

    i: int
    total: int
    x: torch.Tensor  # the latent after the step
    denoised: torch.Tensor  # the x_0 estimate the step used
    sigma: float  # the noise level the step started from
    sigma_next: float  # the noise level of ``x``, where the step ended


Callback = Callable[[StepInfo], None]
Generators = Sequence[torch.Generator] | None


def check_inputs(x: torch.Tensor, plan: SamplingPlan, generators: Generators, start_step: int):
    """Validate the shared arguments and return the plan from ``start_step``."""
    if not isinstance(plan, SamplingPlan):
        raise TypeError(f"plan must be a SamplingPlan, got {type(plan).__name__}")
    if generators is not None and len(generators) != x.shape[0]:
        raise ValueError(
            f"got {len(generators)} generators for a batch of {x.shape[0]}; pass one per image"
        )
    if not torch.isfinite(x).all():
        raise ValueError("the initial latent holds NaN or inf values")
    return plan.tail(start_step) if start_step else plan


def noise_like(x: torch.Tensor, generators: Generators) -> torch.Tensor:
    """Standard normal noise shaped like x, image b drawn from ``generators[b]``."""
    if generators is None:
        return torch.randn_like(x)
    return torch.stack(
        [
            torch.randn(x.shape[1:], generator=g, device=g.device, dtype=x.dtype).to(x.device)
            for g in generators
        ]
    )


def sigma_at(plan: SamplingPlan, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_i, t_i) as tensors on x's device, for the denoiser call of step i."""
    return plan.sigmas[i].to(x.device), plan.timesteps[i].to(x.device)
