"""Float comparisons whose tolerance scales with the reference.

A float32 result computed two ways (another library, another batch size, another op order) carries
rounding of about 6e-8 of each value per operation, so the gap grows with the size of the values,
and how large it comes out depends on the CPU's vector width, its BLAS kernels and the thread
count. A fixed absolute bound that holds on one machine then fails on another as soon as the values
are far from 1; bounds here are a fraction of the reference's largest magnitude instead.
"""

from __future__ import annotations

import torch


def assert_close_to(got: torch.Tensor, ref: torch.Tensor, *, rel: float) -> None:
    """max |got - ref| <= rel * max |ref|."""
    assert got.shape == ref.shape, f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"
    delta = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert delta <= rel * scale, (
        f"max |delta| {delta:.3g} > {rel:g} * max |ref| {scale:.3g} "
        f"(delta is {delta / scale if scale else float('inf'):.3g} of the scale)"
    )
