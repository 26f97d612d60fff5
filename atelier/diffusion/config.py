"""The diffusion process a model was trained with: its noise schedule and prediction type."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atelier.diffusion.parameterization import PredictionType, check_prediction_type
from atelier.diffusion.schedules import BetaSchedule, alphas_cumprod, make_betas


@dataclass(frozen=True)
class DiffusionConfig:
    """Schedule and parameterisation; a model folder stores it so sampling matches training."""

    beta_schedule: BetaSchedule = "scaled_linear"
    n_train: int = 1000
    beta_start: float | None = None
    beta_end: float | None = None
    zero_terminal_snr: bool = False
    prediction_type: PredictionType = "epsilon"

    def __post_init__(self) -> None:
        check_prediction_type(self.prediction_type)
        make_betas(self.beta_schedule, self.n_train)  # raises on an unknown schedule

    def alphas_cumprod(self) -> torch.Tensor:
        """abar_t, float64, (n_train,)."""
        betas = make_betas(
            self.beta_schedule,
            self.n_train,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            zero_terminal_snr=self.zero_terminal_snr,
        )
        return alphas_cumprod(betas)
