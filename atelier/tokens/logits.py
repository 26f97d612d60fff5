"""From logits to tokens: filtering, guidance, and sampling each row from its own generator.

Notation: l (B, ..., K) logits over K codes, one row per image; tau the temperature; s the
guidance scale; l_c and l_u the conditional and unconditional logits.

- top-k keeps the k largest logits of each distribution (ties with the k-th kept);
- top-p (nucleus sampling, Holtzman et al., 2020) keeps the smallest set of most likely codes
  whose probabilities sum to at least p (the most likely one always);
- guidance: l = l_u + s (l_c - l_u) (classifier-free guidance, Ho & Salimans, 2022, on logits as
  DALL-E mini's "super-conditioning" and Muse do); s = 1 is the conditional model alone;
- sampling is Gumbel-max: argmax(l / tau + g) with g ~ Gumbel(0, 1) drawn from the row's own
  generator, which is a draw from softmax(l / tau); tau = 0 is the argmax.

Drawing every row's noise from its own generator makes an image independent of its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits`` (..., K) with all but the k largest of each row set to -inf; k = 0 or k >= K:
    unchanged."""
    if k < 0:
        raise ValueError(f"top_k must be >= 0 (0 keeps every code), got {k}")
    if k == 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, -torch.inf)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """``logits`` (..., K) keeping each row's smallest set of most likely codes whose
    probabilities sum to at least ``p``, in (0, 1]; p = 1: unchanged."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
    probs = sorted_logits.softmax(-1)
    # A code is dropped when the codes more likely than it already hold p.
    mass_before = probs.cumsum(-1) - probs  # (..., K)
    drop = torch.zeros_like(mass_before, dtype=torch.bool).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(drop, -torch.inf)


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """l_u + s (l_c - l_u)."""
    return uncond + scale * (cond - uncond)


def with_guidance(logits_fn: LogitsFn, scale: float) -> LogitsFn:
    """A logits function over B rows from one over 2B: the conditional rows first, then the
    unconditional ones (the caller's function holds both texts); each row's tokens are given to
    both of its halves and the two logits are guided by ``scale``."""

    def guided(tokens: torch.Tensor) -> torch.Tensor:
        cond, uncond = logits_fn(torch.cat([tokens, tokens])).chunk(2)
        return guide(cond, uncond, scale)

    return guided


def gumbel_noise(
    shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device | str
) -> torch.Tensor:
    """Gumbel(0, 1) noise (B, *shape[1:]), row i from ``generators[i]`` (float32)."""
    if len(generators) != shape[0]:
        raise ValueError(f"{shape[0]} rows but {len(generators)} generators; pass one per row")
    tiny = torch.finfo(torch.float32).tiny
    u = torch.stack([torch.rand(tuple(shape[1:]), generator=g) for g in generators])
    return -torch.log(-torch.log(u.clamp(min=tiny))).to(device)


def sample_logits(
    logits: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """Codes (B, ...) drawn from ``logits`` (B, ..., K) at ``temperature`` after top-k and
    top-p filtering, row i with ``generators[i]``; ``temperature=0`` takes the argmax."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    filtered = top_p_filter(top_k_filter(logits.float() / temperature, top_k), top_p)
    return (filtered + gumbel_noise(filtered.shape, generators, logits.device)).argmax(-1)
