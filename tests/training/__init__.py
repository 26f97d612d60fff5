"""A tiny regression task shared by the training tests, also run in subprocesses."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from atelier.training import TrainConfig, TrainResult, train


class RegressionData(Dataset):
    """``n`` points of y = tanh(x A) B, fixed by ``seed``."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=generator)  # (N, 4)
        a, b = torch.randn(4, 8, generator=generator), torch.randn(8, 2, generator=generator)
        self.y = torch.tanh(self.x @ a) @ b  # (N, 2)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class RegressionTask:
    """An MLP fit by MSE. ``noise`` jitters inputs from the global RNG, so resumes must restore
    it; ``sleep`` slows steps down for the kill and time-budget tests."""

    def __init__(self, *, hidden: int = 16, noise: float = 0.0, sleep: float = 0.0) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        self.noise = noise
        self.sleep = sleep

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor], step: int):
        if self.sleep:
            time.sleep(self.sleep)
        x, y = batch
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        per_sample = ((self.net(x) - y) ** 2).mean(dim=1)  # (B,)
        return per_sample.mean(), {"mse": per_sample.mean().item()}

    def full_loss(self, data: RegressionData) -> float:
        with torch.no_grad():
            return ((self.net(data.x) - data.y) ** 2).mean().item()


def small_config(**overrides) -> TrainConfig:
    values = dict(max_steps=10, batch_size=8, lr=1e-2, grad_clip=None, checkpoint_every=5)
    return TrainConfig(**{**values, **overrides})


def run(
    run_dir: str | Path, *, sleep: float = 0.0, resume: bool = False, callbacks=(), **overrides
) -> TrainResult:
    """Train a fresh noisy task; the kill tests run this in a subprocess."""
    task = RegressionTask(noise=0.1, sleep=sleep)
    config = small_config(ema_decay=0.9, grad_accum=2, warmup_steps=3, **overrides)
    return train(
        task, RegressionData(), config, run_dir=run_dir, resume=resume, callbacks=callbacks
    )
