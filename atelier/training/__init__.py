"""Training: one generic loop (``train``) that drives any ``Task``, with its config and parts."""

from atelier.training.callbacks import (
    Callback,
    JsonlLogger,
    StepState,
    TimestepLossLogger,
    TrainResult,
)
from atelier.training.config import TrainConfig
from atelier.training.ema import EMA
from atelier.training.loop import lr_at, train
from atelier.training.task import Logs, SamplingTask, StatefulTask, Task

__all__ = [
    "EMA",
    "Callback",
    "JsonlLogger",
    "Logs",
    "SamplingTask",
    "StatefulTask",
    "StepState",
    "Task",
    "TimestepLossLogger",
    "TrainConfig",
    "TrainResult",
    "lr_at",
    "train",
]
