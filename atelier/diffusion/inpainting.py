"""Masked sampling: inpainting with any denoiser, and RePaint's resampling jumps.

Notation: z the clean known latents, m the keep mask (1 where z is known, 0 where the model
paints), D(x, sigma, t) the denoiser. :func:`keep_known` wraps D so that its x_0 estimate is z
wherever m = 1. Every sampler here moves x towards D along the noise it holds, so in the known
region x stays exactly z + sigma * eps: the original re-noised to each step's level, with the
sampler's own noise (for Euler, x_{i+1} - z = sigma_{i+1} / sigma_i (x_i - z)). The painted
region sees a consistent noisy context at every step and the known region ends at z exactly.

RePaint (Lugmayr et al. 2022) harmonises the two regions by going back: after every ``jump``
steps, noise x back up to the level it had ``jump`` steps earlier and run those steps again,
``resample`` times in all.
"""

from __future__ import annotations

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.samplers import Sampler
from atelier.diffusion.samplers.base import Callback, Generators, StepInfo, noise_like


def keep_known(denoiser: Denoiser, known: torch.Tensor, keep: torch.Tensor) -> Denoiser:
    """D with its x_0 estimate replaced by ``known`` (B, C, h, w) where ``keep`` (B, 1, h, w) is 1;
    a soft mask in (0, 1) blends the two."""
    if keep.shape[0] != known.shape[0] or keep.shape[-2:] != known.shape[-2:]:
        raise ValueError(
            f"mask {tuple(keep.shape)} does not match the latents {tuple(known.shape)}"
        )

    def wrapped(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        denoised = denoiser(x, sigma, t)
        k = keep.to(denoised)
        return k * known.to(denoised) + (1 - k) * denoised

    return wrapped


def segment(plan: SamplingPlan, start: int, stop: int) -> SamplingPlan:
    """Steps ``start`` to ``stop`` (exclusive) of ``plan`` as a plan of their own."""
    return SamplingPlan(plan.sigmas[start : stop + 1], plan.timesteps[start:stop], plan.log_sigmas)


def sample_with_jumps(
    sampler: Sampler,
    denoiser: Denoiser,
    x: torch.Tensor,
    plan: SamplingPlan,
    *,
    jump: int,
    resample: int,
    generators: Generators = None,
    callback: Callback | None = None,
    start_step: int = 0,
) -> torch.Tensor:
    """Run ``sampler`` over ``plan`` in segments of ``jump`` steps, each ``resample`` times:
    between runs x is noised back from the segment's end level to its start level."""
    if jump < 1 or resample < 1:
        raise ValueError(f"jump and resample must be >= 1, got {jump} and {resample}")
    n = len(plan)
    for start in range(start_step, n, jump):
        stop = min(start + jump, n)
        part = segment(plan, start, stop)
        for r in range(resample):
            last = r == resample - 1
            report = _shifted(callback, start, n) if last and callback is not None else None
            y = sampler(denoiser, x, part, generators=generators, callback=report)
            if last:
                x = y
            else:
                hi, lo = plan.sigmas[start], plan.sigmas[stop]
                x = y + noise_like(y, generators) * float((hi**2 - lo**2).sqrt())
    return x


def _shifted(callback: Callback, offset: int, total: int) -> Callback:
    """A callback reporting a segment's steps as steps of the whole plan."""

    def report(info: StepInfo) -> None:
        callback(StepInfo(info.i + offset, total, info.x, info.denoised, info.sigma,
                          info.sigma_next))  # fmt: skip

    return report
