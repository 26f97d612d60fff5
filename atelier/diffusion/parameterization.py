"""The forward process q(x_t | x_0) and the three things a network may predict.

Notation (VP form): alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), and
x_t = alpha_t x_0 + sigma_t eps. The network predicts one of
``epsilon`` (eps), ``sample`` (x_0) or ``v_prediction`` (v = alpha_t eps - sigma_t x_0; Salimans
& Ho 2022). Given x_t and any one of them, the others follow in closed form.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

PredictionType = Literal["epsilon", "sample", "v_prediction"]
PREDICTION_TYPES: tuple[str, ...] = get_args(PredictionType)


def check_prediction_type(kind: str) -> None:
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {kind!r}; valid: {', '.join(PREDICTION_TYPES)}")


def broadcast(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or per-image (B,) value shaped to broadcast against x (B, ...)."""
    v = torch.as_tensor(v, device=x.device)
    if v.ndim == 0:
        return v.to(x.dtype)
    return v.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def q_sample(x0: torch.Tensor, abar_t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I) with the given noise."""
    abar = broadcast(abar_t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def training_target(
    kind: PredictionType, x0: torch.Tensor, noise: torch.Tensor, abar_t: torch.Tensor | float
) -> torch.Tensor:
    """What the network should output for this (x_0, eps) pair."""
    check_prediction_type(kind)
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return x0
    abar = broadcast(abar_t, x0)
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0


def predicted_x0(
    kind: PredictionType, output: torch.Tensor, x_t: torch.Tensor, abar_t: torch.Tensor | float
) -> torch.Tensor:
    """x_0 implied by the network output at x_t (VP latent)."""
    check_prediction_type(kind)
    abar = broadcast(abar_t, x_t)
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    if kind == "epsilon":
        return (x_t - sigma * output) / alpha
    if kind == "sample":
        return output
    return alpha * x_t - sigma * output


def predicted_eps(
    kind: PredictionType, output: torch.Tensor, x_t: torch.Tensor, abar_t: torch.Tensor | float
) -> torch.Tensor:
    """eps implied by the network output at x_t (VP latent)."""
    check_prediction_type(kind)
    abar = broadcast(abar_t, x_t)
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    if kind == "epsilon":
        return output
    if kind == "sample":
        return (x_t - alpha * output) / sigma
    return sigma * x_t + alpha * output
