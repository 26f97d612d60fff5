"""Run a network in fixed-size chunks, so an image's pixels never depend on its batch.

CPU kernels (oneDNN convolutions, BLAS matmuls) pick their blocking from the tensor shapes, so the
same image in a batch of 4 and alone differs in the last bits, and after sampling in whole pixels.
With every call made at exactly ``rows`` rows (the last chunk zero-padded), the arithmetic for a
row depends only on that row: a batch gives the same images as single runs, bit for bit.

``rows`` is best the number of rows one image brings (two under classifier-free guidance), so a
single image pays for no padding. A batch would rather run more rows a call, which costs less per
row; ``wide`` sizes allow it, each only after its first call has given every row bit for bit what
calls of ``rows`` rows gave it. Whether they do is the kernels' business: on this machine's oneDNN
and MKL (torch 2.13), a UNet's convolutions at 1 row differ from those at 2 or more, a matmul of
per-image vectors differs between 5 and 6 rows, a 1 x 1 convolution of 64 pixels a row between 15
and 16 (docs/latency.md). So it is checked on the run's own inputs, never assumed.
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
    fn: Callable[..., torch.Tensor], rows: int, *, wide: tuple[int, ...] = ()
) -> Callable[..., torch.Tensor]:
    """``fn(*args)`` evaluated ``rows`` rows at a time; every argument is batched along dim 0.

    ``wide`` sizes (each above ``rows``) may serve too: each call takes the smallest usable size
    that holds every row left (padded), else the largest. A wide size's first call is a full one,
    checked bit for bit against ``rows``-row calls on the same rows, and the size is used again
    only if they agree; so every row is what a ``rows``-row call gives it, whatever ``wide`` is.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if any(size <= rows for size in wide):
        raise ValueError(f"wide sizes must exceed rows ({rows}), got {wide}")
    agrees: dict[int, bool] = {}  # each wide size's check, once made: it holds for the run

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
            sizes = sorted({rows, *(w for w in wide if agrees.get(w, w <= left))})
            size = next((s for s in sizes if s >= left), sizes[-1])
            n = min(size, left)
            if size == rows or agrees.get(size):
                outputs.append(chunk(args, start, n, size))
            else:
                reference = narrow(args, start, n)
                agrees[size] = torch.equal(chunk(args, start, n, size), reference)
                outputs.append(reference)
            start += n
        return torch.cat(outputs)

    return run
