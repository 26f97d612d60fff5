"""The one training loop of atelier: any ``Task``, any dataset, one process or many.

Per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` samples (each rank takes its
shard), loss scaled by 1 / grad_accum and backpropagated under optional bf16 autocast; gradients
averaged over ranks; NaN/inf check; global-norm clipping; AdamW with linear warmup; EMA update;
callbacks, samples and checkpoints on rank 0.

Data order is a pure function of (seed, micro-batch index): epoch e is a permutation drawn from
a generator seeded by (seed, e), cut into ``len(dataset) // batch_size`` micro-batches (the tail
is dropped). A resumed run therefore continues at exactly the batch the killed one would have.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from atelier.training.callbacks import Callback, JsonlLogger, StepState, TrainResult
from atelier.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    TrainingState,
    latest_good_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    tensors_with_prefix,
)
from atelier.training.config import TrainConfig
from atelier.training.ema import EMA
from atelier.training.precision import use_bf16
from atelier.training.task import MultiRateTask, SamplingTask, StatefulTask, Task


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then constant or a
    cosine decay from ``lr`` at the end of warmup to ``lr * min_lr_ratio`` at ``max_steps``.

    Step 0 already gets ``lr / warmup_steps`` so no step is wasted at lr 0.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    span = max(config.max_steps - config.warmup_steps, 1)
    progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class MicroBatches:
    """Endless index lists for ``rank``'s shard of every micro-batch, from micro-batch ``start``."""

    def __init__(
        self, n: int, *, batch_size: int, seed: int, start: int, rank: int, world_size: int
    ) -> None:
        if n < batch_size:
            raise ValueError(f"the dataset holds {n} items, fewer than batch_size {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must divide among {world_size} ranks")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.shard = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.n // self.batch_size
        epoch, index = divmod(self.start, per_epoch)
        while True:
            # Hashing an int tuple is stable across processes, unlike hashing a str.
            generator = torch.Generator().manual_seed(hash((self.seed, epoch)) & (2**63 - 1))
            order = torch.randperm(self.n, generator=generator)
            for b in range(index, per_epoch):
                batch = order[b * self.batch_size : (b + 1) * self.batch_size]
                yield batch[self.shard].tolist()
            epoch, index = epoch + 1, 0


def train(
    task: Task,
    dataset: Dataset,
    config: TrainConfig,
    *,
    run_dir: str | os.PathLike[str],
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> TrainResult:
    """Train ``task`` on ``dataset`` for ``config.max_steps`` optimizer steps.

    Launched by ``torchrun`` (RANK / WORLD_SIZE set), runs data parallel over gloo (CPU) or
    nccl (CUDA); only rank 0 writes checkpoints, logs and samples. ``resume`` continues from the
    newest readable checkpoint in ``run_dir`` (starting fresh if there is none); without it,
    ``run_dir`` must hold no checkpoints. Raises CheckpointError when it holds some without
    ``resume``, or none of them reads back, or they belong to another run; FloatingPointError on
    a NaN/inf loss or gradient before any state is changed, so the last checkpoint on disk stays
    the last good one.
    """
    run_dir = Path(run_dir)
    rank, world_size, owns_group = _init_distributed()
    result = _train(task, dataset, config, run_dir, callbacks, resume, rank, world_size)
    if owns_group:
        # Every rank finished before any tears the group down (a gloo rank whose peer had gone
        # aborted now and then: "terminate called without an active exception"); after an
        # error the group is left to the process's exit, since tearing it down while a peer
        # still waits in a collective can hang (torchtitan does the same).
        dist.barrier()
        dist.destroy_process_group()
    return result


def _train(
    task: Task,
    dataset: Dataset,
    config: TrainConfig,
    run_dir: Path,
    callbacks: Sequence[Callback],
    resume: bool,
    rank: int,
    world_size: int,
) -> TrainResult:
    started = time.monotonic()
    sampling = task if isinstance(task, SamplingTask) else None
    if config.sample_every is not None and sampling is None:
        raise ValueError("config.sample_every is set but the task has no sample(step, out_dir)")
    modules = task.modules()
    if world_size > 1 and torch.cuda.is_available():
        for module in modules.values():
            module.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))))
    scales = task.lr_scales() if isinstance(task, MultiRateTask) else {}
    param_names, params, optimizer = _optimizer(modules, config, scales)
    device = params[0].device
    bf16 = use_bf16(config.autocast, device)
    if world_size > 1:
        # Ranks built their modules with different seeds; rank 0's weights become everyone's.
        for module in modules.values():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)
    ema = None
    if config.ema_decay is not None:
        ema = EMA(params, decay=config.ema_decay, start=config.ema_start)
    state = TrainingState(config, modules, param_names, optimizer, ema, world_size)

    checkpoint = _find_checkpoint(run_dir, resume)
    step, seconds_before, last_path = 0, 0.0, None
    if checkpoint is None:
        torch.manual_seed(config.seed + rank)
    else:
        _restore(task, state, checkpoint, rank, device)
        step, seconds_before, last_path = checkpoint.step, checkpoint.seconds, checkpoint.path

    sampler = MicroBatches(
        len(dataset),  # type: ignore[arg-type]
        batch_size=config.batch_size,
        seed=config.seed,
        start=step * config.grad_accum,
        rank=rank,
        world_size=world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        # Its own generator keeps the loader from drawing on the global RNG the task uses, and
        # gives workers new seeds after a resume rather than replaying the first segment's.
        generator=torch.Generator().manual_seed(hash((config.seed, rank, step)) & (2**63 - 1)),
    )
    batches = iter(loader)
    hooks = [*callbacks, JsonlLogger()] if rank == 0 else []
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    for hook in hooks:
        hook.on_train_begin(run_dir, step, config)
    for module in modules.values():
        module.train()
    progress = tqdm(
        total=config.max_steps, initial=step, disable=rank != 0, dynamic_ncols=True, desc="train"
    )
    loss = math.nan
    stopped: Literal["max_steps", "max_minutes"] = "max_steps"
    try:
        while step < config.max_steps:
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            local_loss, logs, per_sample = _accumulate(task, batches, step, config, device, bf16)
            out_of_time = config.max_minutes is not None and (
                time.monotonic() - started > config.max_minutes * 60
            )
            loss_tensor, out_of_time = _sync(params, local_loss, out_of_time)
            loss = loss_tensor.item()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or math.inf).item()
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                raise FloatingPointError(
                    f"non-finite training loss {loss} (gradient norm {grad_norm}) at optimizer "
                    f"step {step} (0-based); nothing was written from this state, the last "
                    f"good checkpoint is {last_path}"
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(step)
            seconds = seconds_before + time.monotonic() - started
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}", refresh=False)
            step_state = StepState(
                step, loss, lr, grad_norm, seconds, config, run_dir, logs, per_sample
            )
            for hook in hooks:
                hook.on_step_end(step_state)
            if rank == 0 and sampling and config.sample_every and step % config.sample_every == 0:
                _sample(sampling, ema, step, run_dir / "samples")
            if out_of_time:
                stopped = "max_minutes"
            if step % config.checkpoint_every == 0 or step == config.max_steps or out_of_time:
                last_path = _checkpoint(task, state, run_dir, step, seconds, rank, device, hooks)
            if out_of_time:
                break
    finally:
        progress.close()
    seconds = seconds_before + time.monotonic() - started
    result = TrainResult(step, stopped, loss, last_path if rank == 0 else None, seconds)
    for hook in hooks:
        hook.on_train_end(result)
    return result


def _optimizer(
    modules: dict[str, nn.Module], config: TrainConfig, scales: dict[str, float]
) -> tuple[list[str], list[nn.Parameter], torch.optim.AdamW]:
    """AdamW over the trainable parameters; names and params come back in optimizer order.

    Two groups per learning-rate scale (``MultiRateTask``; one scale of 1 without it), each
    group's ``lr_scale`` kept in the group so a checkpoint records it.
    """
    unknown = sorted(set(scales) - set(modules))
    if unknown:
        raise ValueError(f"lr_scales names {unknown}, which task.modules() does not have")
    for name, scale in scales.items():
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"the lr scale of {name} must be a finite number > 0, got {scale!r}")
    named = [
        (scales.get(name, 1.0), f"{name}.{key}", p)
        for name, module in modules.items()
        for key, p in module.named_parameters()
        if p.requires_grad
    ]
    if not named:
        raise ValueError("task.modules() has no parameter with requires_grad")
    groups, names, params = [], [], []
    for scale in dict.fromkeys(s for s, _, _ in named):
        # Biases and norm gains (1-D) are not decayed: pulling them toward 0 only hurts.
        for decayed in (True, False):
            members = [(n, p) for s, n, p in named if s == scale and (p.ndim >= 2) == decayed]
            names += [n for n, _ in members]
            params += [p for _, p in members]
            groups.append({"params": [p for _, p in members], "lr_scale": scale,
                           "weight_decay": config.weight_decay if decayed else 0.0})  # fmt: skip
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    return names, params, optimizer


def _restore(
    task: Task, state: TrainingState, checkpoint: Checkpoint, rank: int, device: torch.device
) -> None:
    asked = [group["lr_scale"] for group in state.optimizer.param_groups]
    restore_checkpoint(checkpoint, state)
    # Checkpoints written before lr scales existed hold groups without one: a scale of 1.
    saved = [group.get("lr_scale", 1.0) for group in state.optimizer.param_groups]
    if saved != asked:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} was trained with learning-rate scales {saved} per "
            f"parameter group, this run asks for {asked}: the task's lr_scales() changed"
        )
    rng = tensors_with_prefix(checkpoint, "rng.")
    torch.set_rng_state(rng[f"torch.{rank}"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(rng[f"cuda.{rank}"], device)
    if isinstance(task, StatefulTask):
        task.load_extra_state(tensors_with_prefix(checkpoint, "task."))


def _accumulate(
    task: Task,
    batches: Iterator[Any],
    step: int,
    config: TrainConfig,
    device: torch.device,
    bf16: bool,
) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
    """Backpropagate ``grad_accum`` micro-batches; returns this rank's mean loss and logs."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    loss_sum = torch.zeros((), device=device)
    logs: dict[str, float] = {}
    per_sample: dict[str, list[torch.Tensor]] = {}
    for _ in range(config.grad_accum):
        batch = _to_device(next(batches), device)
        with autocast:
            loss, micro_logs = task.loss(batch, step)
        if loss.ndim != 0:
            raise ValueError(f"task.loss must return a scalar, got shape {tuple(loss.shape)}")
        # Scaling each micro-batch makes the summed gradient that of one big batch's mean loss.
        (loss / config.grad_accum).backward()
        loss_sum += loss.detach().float()
        for key, value in micro_logs.items():
            if isinstance(value, torch.Tensor):
                per_sample.setdefault(key, []).append(value.detach().cpu())
            else:
                logs[key] = logs.get(key, 0.0) + value / config.grad_accum
    joined = {key: torch.cat(values) for key, values in per_sample.items()}
    return loss_sum / config.grad_accum, logs, joined


def _init_distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call created the process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return dist.get_rank(), dist.get_world_size(), True


def _find_checkpoint(run_dir: Path, resume: bool) -> Checkpoint | None:
    checkpoint = latest_good_checkpoint(run_dir)
    if checkpoint is not None and not resume:
        raise CheckpointError(
            f"{run_dir} already holds checkpoints; pass resume=True or choose a new run_dir"
        )
    return checkpoint


def _sync(params: list[nn.Parameter], loss: torch.Tensor, flag: bool) -> tuple[torch.Tensor, bool]:
    """Average gradients and loss over ranks and OR ``flag``, in one all-reduce.

    One flat all-reduce per optimizer step is what DistributedDataParallel does under
    ``no_sync`` accumulation; doing it here lets a task call its modules directly (several
    networks, frozen encoders) instead of through a wrapper.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return loss, flag
    world_size = dist.get_world_size()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat(
        [g.reshape(-1).float() for g in grads]
        + [loss.reshape(1).float(), torch.tensor([float(flag)], device=loss.device)]
    )
    dist.all_reduce(flat)
    offset = 0
    for param, grad in zip(params, grads):
        param.grad = flat[offset : offset + grad.numel()].view_as(grad).to(grad.dtype) / world_size
        offset += grad.numel()
    return flat[-2] / world_size, bool(flat[-1] > 0)


def _checkpoint(
    task: Task,
    state: TrainingState,
    run_dir: Path,
    step: int,
    seconds: float,
    rank: int,
    device: torch.device,
    hooks: list[Callback],
) -> Path | None:
    """Gather every rank's RNG states to rank 0 and write there; other ranks return None."""
    local = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        local["cuda"] = torch.cuda.get_rng_state(device)
    rng: dict[str, torch.Tensor] = {}
    for kind, value in local.items():
        if dist.is_initialized() and dist.get_world_size() > 1:
            moved = value.to(device)  # nccl only moves device tensors
            gathered = [torch.empty_like(moved) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, moved)
            rng.update({f"{kind}.{r}": g.cpu() for r, g in enumerate(gathered)})
        else:
            rng[f"{kind}.0"] = value
    if rank != 0:
        return None
    extra = task.extra_state() if isinstance(task, StatefulTask) else {}
    path = save_checkpoint(run_dir, state, step=step, seconds=seconds, rng_states=rng, extra=extra)
    for hook in hooks:
        hook.on_checkpoint(step, path)
    return path


@torch.no_grad()
def _sample(task: SamplingTask, ema: EMA | None, step: int, out_dir: Path) -> None:
    modules = task.modules().values()
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with ema.swapped() if ema is not None else nullcontext():
            task.sample(step, out_dir)
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(_to_device(item, device) for item in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch
