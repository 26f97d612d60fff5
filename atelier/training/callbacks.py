"""Hooks into the training loop, called on rank 0 only, plus the built-in loggers.

Callbacks run in the order given, and the loop's own JSONL logger runs last, so a callback can
add keys to ``state.logs`` (as ``TimestepLossLogger`` does) and see them written.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from atelier.atomic import write_atomic
from atelier.diffusion.losses import loss_by_timestep
from atelier.training.config import TrainConfig


@dataclass
class StepState:
    """What the loop knows after an optimizer step."""

    step: int  # optimizer steps taken, this one included
    loss: float  # mean loss of the step over all micro-batches and ranks
    lr: float
    grad_norm: float  # global norm before clipping
    seconds: float  # training wall time so far, over all resumed segments
    config: TrainConfig
    run_dir: Path
    logs: dict[str, float] = field(default_factory=dict)  # the task's, averaged over micro-batches
    per_sample: dict[str, torch.Tensor] = field(default_factory=dict)  # rank 0's shard, (B,) each


@dataclass(frozen=True)
class TrainResult:
    """How a call to ``train`` ended."""

    step: int
    stopped: Literal["max_steps", "max_minutes"]
    loss: float  # of the last step taken in this call; NaN if it took none
    checkpoint: Path | None  # the newest checkpoint on disk; None on ranks other than 0
    seconds: float


def is_log_step(state: StepState) -> bool:
    """Rows are written every ``log_every`` steps and at the last step."""
    return state.step % state.config.log_every == 0 or state.step == state.config.max_steps


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_train_begin(self, run_dir: Path, step: int, config: TrainConfig) -> None:
        """Before the first step; ``step`` > 0 when resuming."""

    def on_step_end(self, state: StepState) -> None:
        """After every optimizer step."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """After a checkpoint file and its ``latest.json`` are on disk."""

    def on_train_end(self, result: TrainResult) -> None:
        """After the last step and its checkpoint, on a normal end (not after an error)."""


class JsonlLogger(Callback):
    """Appends one JSON object per ``log_every`` steps to ``run_dir/log.jsonl``.

    Each row holds step, loss, lr, grad_norm, seconds and the task's logs, the scalars averaged
    over the steps since the previous row. The file is reopened per row so a kill loses nothing.
    """

    def __init__(self) -> None:
        self.path: Path | None = None
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def on_train_begin(self, run_dir: Path, step: int, config: TrainConfig) -> None:
        self.path = Path(run_dir) / "log.jsonl"
        if self.path.exists():
            # A killed run logged steps past its last checkpoint; the resumed run redoes them.
            kept = [row for row in _read_rows(self.path) if row["step"] <= step]
            write_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))

    def on_step_end(self, state: StepState) -> None:
        for key, value in {"loss": state.loss, "grad_norm": state.grad_norm, **state.logs}.items():
            self._sums[key] += value
            self._counts[key] += 1
        if not is_log_step(state):
            return
        row = {"step": state.step, "lr": state.lr, "seconds": round(state.seconds, 3)}
        row.update({key: self._sums[key] / self._counts[key] for key in self._sums})
        self._sums.clear()
        self._counts.clear()
        if self.path is None:
            raise RuntimeError("JsonlLogger.on_train_begin was not called")
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


class TimestepLossLogger(Callback):
    """Adds the loss per timestep bucket (``loss_t<lo>-<hi>``) to every logged row.

    Needs the task to report per-sample ``t`` (integer timesteps) and ``loss`` in its logs;
    pools them over the steps since the previous row (rank 0's shard only).
    """

    def __init__(self, n_train: int, n_buckets: int = 10) -> None:
        self.n_train = n_train
        self.n_buckets = n_buckets
        self._t: list[torch.Tensor] = []
        self._loss: list[torch.Tensor] = []

    def on_step_end(self, state: StepState) -> None:
        if "t" in state.per_sample and "loss" in state.per_sample:
            self._t.append(state.per_sample["t"])
            self._loss.append(state.per_sample["loss"])
        if not self._t or not is_log_step(state):
            return
        buckets = loss_by_timestep(
            torch.cat(self._loss), torch.cat(self._t), self.n_train, self.n_buckets
        )
        for k, mean in enumerate(buckets.mean.tolist()):
            if not math.isnan(mean):
                lo, hi = int(buckets.edges[k]), math.ceil(buckets.edges[k + 1]) - 1
                state.logs[f"loss_t{lo}-{hi}"] = mean
        self._t.clear()
        self._loss.clear()


def _read_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut short
    return rows


def process_cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CPULedger(Callback):
    """Keeps ``cpu_seconds.json`` in the run folder: one entry per training session, updated
    at every checkpoint, so a session that is killed still counts up to its last checkpoint
    (the model card states the sum). Rank 0's process only."""

    FILE = "cpu_seconds.json"

    def __init__(self, *, preparation: float = 0.0) -> None:
        # CPU seconds this process spent preparing the run before training began (encoding
        # captions with a frozen text encoder): counted in this session's entry.
        self._preparation = preparation
        self._start = 0.0
        self._path: Path | None = None
        self._sessions: list[float] = []

    def on_train_begin(self, run_dir: Path, step: int, config: TrainConfig) -> None:
        self._path = run_dir / self.FILE
        self._sessions = json.loads(self._path.read_text()) if self._path.is_file() else []
        self._sessions.append(0.0)
        self._start = process_cpu_seconds()
        self._write()

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._write()

    def on_train_end(self, result: TrainResult) -> None:
        self._write()

    def _write(self) -> None:
        if self._path is None:
            return
        # Milliseconds: a one-step resume of a tiny model can take under 0.05 CPU-s.
        spent = process_cpu_seconds() - self._start + self._preparation
        self._sessions[-1] = round(spent, 3)
        write_atomic(self._path, json.dumps(self._sessions))

    @property
    def total(self) -> float:
        """CPU seconds over every session so far."""
        return float(sum(self._sessions))
