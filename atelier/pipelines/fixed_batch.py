"""Run a network in fixed-size chunks, so an image's pixels never depend on its batch.

CPU kernels (oneDNN convolutions, BLAS matmuls) pick their blocking from the tensor shapes, so the
same image in a batch of 4 and alone differs in the last bits, and after sampling in whole pixels.
With every call made at exactly ``rows`` rows (the last chunk zero-padded), the arithmetic for a
row depends only on that row: a batch gives the same images as single runs, bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch


def map_rows(cond: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every tensor of a conditioning (a tensor, None, or a dataclass of them)."""
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return fn(cond)
    if dataclasses.is_dataclass(cond) and not isinstance(cond, type):
        return dataclasses.replace(
            cond,
            **{
                f.name: map_rows(getattr(cond, f.name), fn)
                for f in dataclasses.fields(cond)
                if f.init
            },
        )
    raise TypeError(f"cannot split a conditioning of type {type(cond).__name__}")


def _pad(v: torch.Tensor, rows: int) -> torch.Tensor:
    if v.shape[0] == rows:
        return v
    pad = torch.zeros((rows - v.shape[0], *v.shape[1:]), dtype=v.dtype, device=v.device)
    if v.dtype == torch.bool:  # keep one attendable token so padded attention rows stay finite
        pad[..., :1] = True
    return torch.cat([v, pad])


def fixed_batch(fn: Callable[..., torch.Tensor], rows: int) -> Callable[..., torch.Tensor]:
    """``fn(*args)`` evaluated ``rows`` rows at a time; every argument is batched along dim 0."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")

    def run(*args: Any) -> torch.Tensor:
        total = args[0].shape[0]
        outputs = []
        for start in range(0, total, rows):
            n = min(rows, total - start)

            def take(v: torch.Tensor, start: int = start, n: int = n) -> torch.Tensor:
                return _pad(v[start : start + n], rows)

            outputs.append(fn(*(map_rows(a, take) for a in args))[:n])
        return torch.cat(outputs)

    return run
