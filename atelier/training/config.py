"""The one configuration of the training loop, shared by every task (diffusion, VAE, CLIP, GAN)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

# "auto": bf16 where the device computes it natively, else fp32 (training/precision.py).
Autocast = Literal["off", "bf16", "auto"]
AUTOCASTS: tuple[str, ...] = get_args(Autocast)
LRSchedule = Literal["constant", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LRSchedule)

# Fields that shape the optimisation trajectory: a resumed run must agree on them, or it would
# silently continue a different experiment. The rest (length, cadence, budget) may change.
TRAJECTORY_FIELDS: tuple[str, ...] = (
    "batch_size",
    "lr",
    "weight_decay",
    "betas",
    "warmup_steps",
    "lr_schedule",
    "min_lr_ratio",
    "grad_clip",
    "grad_accum",
    "ema_decay",
    "ema_start",
    "autocast",
    "seed",
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of ``atelier.training.train``.

    ``batch_size`` is the global micro-batch: one forward pass over all ranks together, each
    rank taking ``batch_size // world_size`` of it. One optimizer step sees
    ``batch_size * grad_accum`` samples, whatever the number of ranks.
    """

    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    # After warmup: constant, or a cosine decay reaching lr * min_lr_ratio at max_steps (so with
    # "cosine", raising max_steps on --resume stretches the rest of the decay).
    lr_schedule: LRSchedule = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    grad_accum: int = 1
    ema_decay: float | None = None  # None = no EMA
    ema_start: int = 0  # before this step the EMA copies the weights instead of averaging
    autocast: Autocast = "off"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    sample_every: int | None = None  # None = never call ``task.sample``
    log_every: int = 10
    seed: int = 0
    max_minutes: float | None = None  # wall-clock budget; stops cleanly with a checkpoint
    num_workers: int = 0

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep equality with a freshly built config.
        object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "log_every"):
            self._require(getattr(self, name) >= 1, name, "must be >= 1")
        self._require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        for name in ("warmup_steps", "ema_start", "num_workers"):
            self._require(getattr(self, name) >= 0, name, "must be >= 0")
        self._require(math.isfinite(self.lr) and self.lr > 0, "lr", "must be a finite number > 0")
        self._require(
            self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {LR_SCHEDULES}"
        )
        self._require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        self._require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self._require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            "must be two numbers in [0, 1)",
        )
        if self.grad_clip is not None:
            self._require(self.grad_clip > 0, "grad_clip", "must be > 0 or None")
        if self.ema_decay is not None:
            self._require(0 < self.ema_decay < 1, "ema_decay", "must be in (0, 1) or None")
        self._require(self.autocast in AUTOCASTS, "autocast", f"must be one of {AUTOCASTS}")
        if self.sample_every is not None:
            self._require(self.sample_every >= 1, "sample_every", "must be >= 1 or None")
        if self.max_minutes is not None:
            self._require(self.max_minutes > 0, "max_minutes", "must be > 0 or None")

    def _require(self, ok: bool, name: str, rule: str) -> None:
        if not ok:
            raise ValueError(f"TrainConfig.{name} {rule}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``TrainConfig(**d)`` rebuilds an equal config."""
        return dataclasses.asdict(self)
