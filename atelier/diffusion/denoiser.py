"""From a network to the denoiser every sampler calls: D(x, sigma, t) -> x_0 estimate.

The network is any function ``model(x_t, t) -> output`` trained on VP latents x_t with one of the
prediction types of ``parameterization.py``; conditioning lives in its closure (see
``guidance.py``). The denoiser takes the VE latent x = x_t / alpha_t at noise level sigma, feeds
the network x_t = x / sqrt(1 + sigma^2), and converts its output to x_0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from atelier.diffusion.parameterization import (
    PredictionType,
    broadcast,
    check_prediction_type,
    predicted_x0,
)

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def per_image(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar (or (B,)) as a (B,) tensor on x's device, float64 kept for timesteps' precision."""
    v = torch.as_tensor(v, device=x.device)
    return v.expand(x.shape[0]) if v.ndim == 0 else v


class VPDenoiser:
    """Wrap a VP network as a VE denoiser ``D(x, sigma, t)`` (Karras et al. 2022, Table 1)."""

    def __init__(self, model: ModelFn, prediction_type: PredictionType) -> None:
        check_prediction_type(prediction_type)
        self.model = model
        self.prediction_type = prediction_type

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = per_image(sigma, x).to(torch.float64)
        abar = 1 / (1 + sigma**2)  # (B,)
        x_t = x * broadcast(abar.sqrt(), x)
        output = self.model(x_t, per_image(t, x).to(x.dtype))
        return predicted_x0(self.prediction_type, output, x_t, abar)
