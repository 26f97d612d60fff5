"""Exponential moving average of parameters: theta_ema <- d * theta_ema + (1 - d) * theta."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Shadow copies of ``params`` in float32, updated after every optimizer step.

    Until ``start`` optimizer steps have been taken the shadow copies the weights outright:
    averaging in the random initialisation would drag the EMA for thousands of steps.
    """

    def __init__(self, params: list[nn.Parameter], *, decay: float, start: int = 0) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.params = params
        self.decay = decay
        self.start = start
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in; ``step`` counts optimizer steps taken so far."""
        for shadow, param in zip(self.shadow, self.params):
            if step <= self.start:
                shadow.copy_(param)
            else:
                shadow.lerp_(param.float(), 1.0 - self.decay)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Run the body with the EMA weights in the model, restoring the live weights after."""
        live = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for param, shadow in zip(self.params, self.shadow):
                param.copy_(shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in zip(self.params, live):
                    param.copy_(saved)
