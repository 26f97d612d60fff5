"""Training losses for a network on the VP forward process, as pure functions.

Notation (``schedules.py``, ``parameterization.py``): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
and the signal-to-noise ratio SNR(t) = abar_t / (1 - abar_t), one over the VE sigma_t^2. The
network output is regressed on ``training_target`` of its prediction type. Errors in the three
parameterizations are fixed multiples of the x_0 error:

    |x0_hat - x0|^2 = |eps_hat - eps|^2 / SNR = |v_hat - v|^2 / (SNR + 1),

so Min-SNR-gamma (Hang et al. 2023), which weights the x_0 error by min(SNR, gamma), weights
the epsilon loss by min(SNR, gamma) / SNR, the x_0 loss by min(SNR, gamma) and the v loss by
min(SNR, gamma) / (SNR + 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from atelier.diffusion.parameterization import (
    PredictionType,
    check_prediction_type,
    training_target,
)

Weighting = Literal["uniform", "min_snr"]
Reduction = Literal["mean", "none"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def _check_timesteps(t: torch.Tensor, n_train: int) -> None:
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"training timesteps must be integers, got dtype {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() >= n_train):
        raise ValueError(f"training timesteps must lie in [0, {n_train - 1}]")


def _abar_at(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    _check_timesteps(t, len(alphas_cumprod))
    return alphas_cumprod.double().to(t.device)[t]


def snr(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SNR(t) = abar_t / (1 - abar_t) at integer timesteps t (B,), float64."""
    abar = _abar_at(alphas_cumprod, t)
    return abar / (1 - abar)


def min_snr_weight(
    snr_t: torch.Tensor, prediction_type: PredictionType, gamma: float = 5.0
) -> torch.Tensor:
    """Min-SNR-gamma loss weight (Hang et al. 2023) for a network predicting ``prediction_type``."""
    check_prediction_type(prediction_type)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"snr_gamma must be a positive number, got {gamma!r}")
    if prediction_type == "epsilon":
        # min(SNR, gamma) / SNR written so that zero terminal SNR gives its limit 1, not 0 / 0.
        return (gamma / snr_t).clamp(max=1.0)
    clipped = snr_t.clamp(max=gamma)
    return clipped if prediction_type == "sample" else clipped / (snr_t + 1)


def diffusion_loss(
    net_output: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    prediction_type: PredictionType,
    weighting: Weighting = "uniform",
    snr_gamma: float = 5.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Weighted MSE between the network output at x_t and its target (Ho et al. 2020, eq. 14).

    ``net_output``, ``x0`` and ``noise`` are (B, ...), ``t`` (B,) integer training timesteps.
    Each image's squared error is averaged over its elements and weighted by w(t): 1 for
    ``uniform``, :func:`min_snr_weight` for ``min_snr``. ``reduction="mean"`` returns the batch
    mean (a scalar), ``"none"`` the (B,) per-image losses. Computed in at least float32.
    """
    check_prediction_type(prediction_type)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
    if not net_output.shape == x0.shape == noise.shape:
        raise ValueError(
            f"net_output {tuple(net_output.shape)}, x0 {tuple(x0.shape)} and noise "
            f"{tuple(noise.shape)} must have one shape"
        )
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must hold one timestep per image, got shape {tuple(t.shape)}")
    abar_t = _abar_at(alphas_cumprod, t)  # (B,)
    target = training_target(prediction_type, x0, noise, abar_t)
    dtype = torch.promote_types(net_output.dtype, torch.float32)
    err = (net_output.to(dtype) - target.to(dtype)).square()
    loss = err.mean(dim=list(range(1, err.ndim)))  # (B,)
    if weighting == "min_snr":
        snr_t = abar_t / (1 - abar_t)
        loss = loss * min_snr_weight(snr_t, prediction_type, snr_gamma).to(dtype)
    return loss.mean() if reduction == "mean" else loss


def training_noise(
    x0: torch.Tensor, *, offset: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard normal noise shaped like x0 (B, C, ...), plus optional offset noise.

    Offset noise (Guttenberg 2023) adds ``offset`` times one normal draw per image and channel,
    constant over the spatial axes. Per-pixel noise barely destroys an image's mean colour, so a
    model trained without it struggles to make very dark or very bright images.
    """
    if not (math.isfinite(offset) and offset >= 0):
        raise ValueError(f"noise offset must be a non-negative number, got {offset!r}")
    like = {"generator": generator, "dtype": x0.dtype, "device": x0.device}
    noise = torch.randn(x0.shape, **like)
    if offset == 0:
        return noise
    if x0.ndim < 3:
        raise ValueError(f"offset noise needs (B, C, ...) inputs, got shape {tuple(x0.shape)}")
    shape = (*x0.shape[:2], *([1] * (x0.ndim - 2)))  # (B, C, 1, 1)
    return noise + offset * torch.randn(shape, **like)


@dataclass(frozen=True)
class TimestepBuckets:
    """Loss by timestep: bucket k holds edges[k] <= t < edges[k + 1]; empty ones have mean NaN."""

    edges: torch.Tensor  # (K + 1,)
    mean: torch.Tensor  # (K,) float64
    count: torch.Tensor  # (K,) int64


def loss_by_timestep(
    losses: torch.Tensor, t: torch.Tensor, n_train: int, n_buckets: int = 10
) -> TimestepBuckets:
    """Mean per-image loss in ``n_buckets`` equal-width timestep buckets over [0, n_train).

    ``losses`` (B,) is ``diffusion_loss(..., reduction="none")``; which timesteps a model finds
    hard is invisible in the batch mean.
    """
    if not 1 <= n_buckets <= n_train:
        raise ValueError(f"n_buckets must be in [1, {n_train}], got {n_buckets}")
    if losses.ndim != 1 or losses.shape != t.shape:
        raise ValueError(
            f"losses and t must both be (B,); got {tuple(losses.shape)} and {tuple(t.shape)}"
        )
    _check_timesteps(t, n_train)
    bucket = (t.long() * n_buckets) // n_train  # (B,), integer so edges never round wrong
    count = torch.bincount(bucket, minlength=n_buckets)
    total = torch.zeros(n_buckets, dtype=torch.float64, device=losses.device)
    total.index_add_(0, bucket, losses.detach().double())
    edges = torch.arange(n_buckets + 1, dtype=torch.float64) * n_train / n_buckets
    return TimestepBuckets(edges, total / count, count)


def pseudo_huber(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """The pseudo-Huber distance sqrt((x - y)^2 + c^2) - c per element (Charbonnier's; Song &
    Dhariwal 2023 for consistency training, LCM's c = 0.001): quadratic within about c of the
    target, linear beyond, so a few far-off targets do not dominate the gradient."""
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"the pseudo-Huber c must be a finite number > 0, got {c!r}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    return ((x.to(dtype) - y.to(dtype)).square() + c**2).sqrt() - c
