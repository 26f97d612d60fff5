"""Training checkpoints: one safetensors file per save, written atomically, never pickle.

Layout of ``run_dir/checkpoints/step-XXXXXXX.safetensors`` (tensor keys):

    model.<module>.<state_dict key>     weights and buffers of every trained module
    ema.<module>.<param>                EMA weights (float32), when EMA is on
    optim.state.<index>.<name>          optimizer state, ``index`` as in ``metadata["params"]``
    rng.torch.<rank> / rng.cuda.<rank>  generator states (uint8) of every rank
    task.<name>                         ``StatefulTask.extra_state()``

The safetensors metadata holds JSON: format, step, seconds, config, param names, world size,
optimizer param groups and non-tensor optimizer state. ``latest.json`` names the newest file for
other tools; resuming scans the files themselves, so a kill between the two writes is harmless.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from atelier.atomic import write_atomic
from atelier.training.config import TRAJECTORY_FIELDS, TrainConfig
from atelier.training.ema import EMA

FORMAT = "atelier.training/1"
_NAME = re.compile(r"^step-(\d{7,})\.safetensors$")


class CheckpointError(ValueError):
    """Checkpoints that cannot be used as asked: none reads back whole, they belong to another
    run, or a fresh run would overwrite them. The message says which."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back from disk."""

    path: Path
    step: int
    seconds: float  # training wall time accumulated up to this step, over all resumed segments
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]  # JSON-decoded safetensors metadata


@dataclass(frozen=True)
class TrainingState:
    """Everything a checkpoint saves and restores, as the loop holds it."""

    config: TrainConfig
    modules: dict[str, nn.Module]
    param_names: list[str]  # "<module>.<param>", in optimizer index order
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    world_size: int


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_files(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint file in ``run_dir``, oldest first."""
    folder = checkpoint_dir(run_dir)
    found = [(_NAME.match(p.name), p) for p in folder.glob("step-*.safetensors")]
    return sorted((int(m.group(1)), p) for m, p in found if m)


def save_checkpoint(
    run_dir: Path,
    state: TrainingState,
    *,
    step: int,
    seconds: float,
    rng_states: dict[str, torch.Tensor],
    extra: dict[str, torch.Tensor],
) -> Path:
    """Write the checkpoint of ``step``, then ``latest.json``, then drop all but the newest K."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in state.modules.items():
        for key, value in module.state_dict().items():
            tensors[f"model.{name}.{key}"] = value
    if state.ema is not None:
        for name, shadow in zip(state.param_names, state.ema.shadow):
            tensors[f"ema.{name}"] = shadow
    optim = state.optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in optim["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    for key, value in rng_states.items():
        tensors[f"rng.{key}"] = value
    for key, value in extra.items():
        tensors[f"task.{key}"] = value
    metadata = {
        "format": FORMAT,
        "step": step,
        "seconds": seconds,
        "config": state.config.to_dict(),
        "params": state.param_names,
        "world_size": state.world_size,
        "optim_groups": optim["param_groups"],
        "optim_scalars": scalars,
    }
    payload = save(
        {key: value.detach().cpu().contiguous() for key, value in tensors.items()},
        {key: json.dumps(value) for key, value in metadata.items()},
    )
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_atomic(folder / f"step-{step:07d}.safetensors", payload)
    write_atomic(folder / "latest.json", json.dumps({"step": step, "file": path.name}) + "\n")
    for _, old in checkpoint_files(run_dir)[: -state.config.keep_checkpoints]:
        old.unlink(missing_ok=True)
    # Only rank 0 writes, one file at a time, so any temporary file left now is from a killed run.
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint file; raises if it is truncated, corrupt or not a training checkpoint."""
    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
        if raw.get("format") != json.dumps(FORMAT):
            raise ValueError(f"{path} is not an {FORMAT} checkpoint")
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    metadata = {key: json.loads(value) for key, value in raw.items()}
    return Checkpoint(Path(path), int(metadata["step"]), metadata["seconds"], tensors, metadata)


def latest_good_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint that reads back whole; newer unreadable ones are skipped, warning.

    Returns None when there is no checkpoint at all; raises CheckpointError, naming each file
    and what is wrong with it, when there are some but none reads.
    """
    files = checkpoint_files(run_dir)
    skipped: list[tuple[Path, Exception]] = []
    for _, path in reversed(files):
        try:
            checkpoint = load_checkpoint(path)
        except Exception as error:  # a damaged file may fail in safetensors, JSON or ValueError
            skipped.append((path, error))
            continue
        for bad, error in skipped:
            warnings.warn(f"skipping unreadable checkpoint {bad}: {error}", stacklevel=2)
        return checkpoint
    if files:
        reasons = "; ".join(f"{bad.name}: {error}" for bad, error in skipped)
        raise CheckpointError(
            f"no readable checkpoint among {len(files)} in {checkpoint_dir(run_dir)} ({reasons})"
        )
    return None


def restore_checkpoint(checkpoint: Checkpoint, state: TrainingState) -> None:
    """Load weights, EMA and optimizer state into ``state`` after checking they belong to it.

    Raises ValueError naming every trajectory setting, parameter or shape that differs.
    """
    _check_compatible(checkpoint, state)
    tensors = checkpoint.tensors
    for name, module in state.modules.items():
        prefix = f"model.{name}."
        module.load_state_dict(
            {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        )
    if state.ema is not None:
        for name, shadow in zip(state.param_names, state.ema.shadow):
            shadow.copy_(tensors[f"ema.{name}"])
    optim_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim.state."):
            index, name = key[len("optim.state.") :].split(".", 1)
            optim_state.setdefault(int(index), {})[name] = value
    for index, entries in checkpoint.metadata["optim_scalars"].items():
        optim_state.setdefault(int(index), {}).update(entries)
    groups = checkpoint.metadata["optim_groups"]
    for group in groups:
        group["betas"] = tuple(group["betas"])
    state.optimizer.load_state_dict({"state": optim_state, "param_groups": groups})


def tensors_with_prefix(checkpoint: Checkpoint, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (say ``"rng."`` or ``"task."``), with the prefix removed."""
    return {
        key[len(prefix) :]: value
        for key, value in checkpoint.tensors.items()
        if key.startswith(prefix)
    }


def _check_compatible(checkpoint: Checkpoint, state: TrainingState) -> None:
    problems: list[str] = []
    saved = TrainConfig(**checkpoint.metadata["config"])
    for field in TRAJECTORY_FIELDS:
        old, new = getattr(saved, field), getattr(state.config, field)
        if old != new:
            problems.append(f"config {field}: checkpoint {old!r}, this run {new!r}")
    if checkpoint.metadata["world_size"] != state.world_size:
        problems.append(
            f"world size: checkpoint {checkpoint.metadata['world_size']}, this run "
            f"{state.world_size} (per-rank random states cannot be matched up)"
        )
    expected = {
        f"model.{name}.{key}": tuple(value.shape)
        for name, module in state.modules.items()
        for key, value in module.state_dict().items()
    }
    found = {k: tuple(v.shape) for k, v in checkpoint.tensors.items() if k.startswith("model.")}
    for key in sorted(expected.keys() - found.keys()):
        problems.append(f"{key}: missing from checkpoint")
    for key in sorted(found.keys() - expected.keys()):
        problems.append(f"{key}: in checkpoint but not in the model")
    for key in sorted(expected.keys() & found.keys()):
        if expected[key] != found[key]:
            problems.append(f"{key}: checkpoint shape {found[key]}, model shape {expected[key]}")
    if not problems and checkpoint.metadata["params"] != state.param_names:
        problems.append("the trained parameters (requires_grad) differ from the checkpoint's")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not match this run:\n  {shown}{more}"
        )


def final_weights(run_dir: Path, name: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load a trained module's weights from the newest checkpoint into ``module``: its EMA
    weights where there are any."""
    checkpoint = latest_good_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}; train first")
    weights = tensors_with_prefix(checkpoint, f"model.{name}.")
    weights |= tensors_with_prefix(checkpoint, f"ema.{name}.")
    module.load_state_dict(weights)
    return weights
