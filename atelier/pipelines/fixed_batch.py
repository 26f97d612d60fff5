"""Run a network in fixed-size chunks, so an image's pixels never depend on its batch.

CPU kernels (oneDNN convolutions, BLAS matmuls) pick their blocking from the tensor shapes, so the
same image in a batch of 4 and alone differs in the last bits, and after sampling in whole pixels.
With every call made at exactly ``rows`` rows (the last chunk zero-padded), the arithmetic for a
row depends only on that row: a batch gives the same images as single runs, bit for bit.

``rows`` is best the number of rows one image brings (two under classifier-free guidance), so a
single image pays for no padding. A long batch would rather run more rows per call, which costs
less per row; ``wide`` allows it, but only after the run's first wide call has given every row
bit for bit what calls of ``rows`` rows gave it. Measured on this machine's oneDNN and MKL
(bench/latency.py): a UNet's convolutions at 1 row differ from those at 2 or more, the BLAS
matmul of a (B, E) vector by B's blocking (6 rows differ from 5), a 1x1 convolution's at 16 rows
from 8; which sizes agree is the build's and the CPU's business, so it is checked, never assumed.
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


def fixed_batch(
    fn: Callable[..., torch.Tensor], rows: int, *, wide: int | None = None
) -> Callable[..., torch.Tensor]:
    """``fn(*args)`` evaluated ``rows`` rows at a time; every argument is batched along dim 0.

    With ``wide``, a call with more than ``wide / 2`` rows left evaluates ``wide`` of them at
    once (padded if fewer) from the first time such a call agrees bit for bit with ``rows``-row
    calls on the same rows; until that check and after it fails, it stays at ``rows``. Either
    way every row is what a ``rows``-row call gives it, so the results never depend on ``wide``.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if wide is not None and wide <= rows:
        raise ValueError(f"wide must exceed rows ({rows}), got {wide}")
    agrees: list[bool] = []  # the check's answer, once made: the same for the rest of the run

    def chunk(args: tuple, start: int, n: int, size: int) -> torch.Tensor:
        def take(v: torch.Tensor) -> torch.Tensor:
            return _pad(v[start : start + n], size)

        return fn(*(map_rows(a, take) for a in args))[:n]

    def narrow(args: tuple, start: int, n: int) -> torch.Tensor:
        return torch.cat(
            [chunk(args, s, min(rows, start + n - s), rows) for s in range(start, start + n, rows)]
        )

    def run(*args: Any) -> torch.Tensor:
        total = args[0].shape[0]
        outputs, start = [], 0
        while start < total:
            left = total - start
            if wide is None or left <= wide // 2 or agrees == [False]:
                n = min(rows, left)
                outputs.append(chunk(args, start, n, rows))
            else:
                n = min(wide, left)
                if agrees:
                    outputs.append(chunk(args, start, n, wide))
                else:
                    reference = narrow(args, start, n)
                    agrees.append(torch.equal(chunk(args, start, n, wide), reference))
                    outputs.append(reference)
            start += n
        return torch.cat(outputs)

    return run
