"""What the training loop drives: a ``Task`` owns its networks and knows its loss, nothing else.

The loop owns the optimizer, schedule, EMA, precision, data order, parallelism, checkpoints and
logs, so a task for latent diffusion, a VAE or CLIP is a few dozen lines with no training
machinery in it (and networks stay pure ``nn.Module``s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

# A float is a scalar to log. A 1-D tensor is a per-sample value (say ``t`` and ``loss`` for each
# image of the batch): callbacks see it (``callbacks.TimestepLossLogger``), the JSONL log does not.
Logs = dict[str, float | torch.Tensor]


@runtime_checkable
class Task(Protocol):
    """A trainable objective.

    ``modules()`` names the networks to train; their parameters with ``requires_grad`` are
    optimised and checkpointed (with their buffers) under ``model.<name>.``. Frozen helpers
    (a VAE encoder, a text encoder) stay out of it. The loop moves each batch to the device of
    the first trained parameter and calls ``loss`` under autocast; ``step`` is the index of the
    optimizer step being taken (0-based), for tasks whose objective changes over time.
    """

    def modules(self) -> dict[str, nn.Module]: ...

    def loss(self, batch: Any, step: int) -> tuple[torch.Tensor, Logs]: ...


@runtime_checkable
class SamplingTask(Task, Protocol):
    """A task that can draw samples, called on rank 0 every ``sample_every`` steps.

    The loop swaps EMA weights in (when EMA is on), sets eval mode and disables grad around the
    call. Draw from fixed seeds so grids from different steps compare image for image.
    """

    def sample(self, step: int, out_dir: Path) -> None: ...


@runtime_checkable
class MultiRateTask(Task, Protocol):
    """A task whose networks learn at different rates: ``lr_scales()`` maps a module name to a
    factor on the loop's learning rate (a module it leaves out gets 1). A GAN gives its
    discriminator a higher one (the two time-scale update rule; Heusel et al., 2017): with
    Adam a rescaled loss would not change the step, only the learning rate does."""

    def lr_scales(self) -> dict[str, float]: ...


@runtime_checkable
class StatefulTask(Task, Protocol):
    """A task with state beyond its modules (say a running loss scale), checkpointed as tensors."""

    def extra_state(self) -> dict[str, torch.Tensor]: ...

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None: ...
