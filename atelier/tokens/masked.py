"""MaskGIT's iterative parallel decoding (Chang et al., 2022), and its mask schedules.

Notation: c (B, n) tokens, some of them the mask token m (unknown); S steps; gamma(r) the mask
schedule, the fraction of tokens still masked at progress r in [0, 1] (gamma(0) = 1, gamma(1) = 0).
At step s = 0 .. S-1, with r = (s + 1) / S and U_0 the number unknown at the start:

    l = logits(c)                                  every position, in one pass (B, n, K)
    c~_i ~ softmax(l_i / tau) where c_i = m;  c~_i = c_i elsewhere
    conf_i = log softmax(l_i)[c~_i] + t_c (1 - r) g_i,  g ~ Gumbel(0, 1);  conf_i = +inf if c_i != m
    c = c~ with the floor(U_0 gamma(r)) least confident positions masked again (none at the end)

A token kept once is never changed (its confidence is +inf and at least one position stays
unknown until the last step, which unmasks everything). The same schedule draws training masks.

Inpainting starts from the image's own tokens with only the repainted ones masked: the schedule
counts the U_0 unknown ones alone. At least one of them is decided per step, so a few unknown
tokens are all decided in the first few steps (a single one in the first), and the steps after
that change nothing (each still makes its pass, as ``transformer_passes`` counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch

from atelier.tokens.autoregressive import TokenCallback, TokenStep
from atelier.tokens.logits import LogitsFn, gumbel_noise, sample_logits

MaskSchedule = Callable[[float], float]
ScheduleName = Literal["cosine", "linear", "square", "convex"]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)


def cosine_schedule(r: float) -> float:
    """gamma(r) = cos(pi r / 2): MaskGIT's choice, few tokens decided first, many at the end."""
    return math.cos(math.pi / 2 * r)


def linear_schedule(r: float) -> float:
    """gamma(r) = 1 - r: the same number of tokens decided at every step."""
    return 1.0 - r


def square_schedule(r: float) -> float:
    """gamma(r) = 1 - r^2: concave like the cosine, more tokens early than it."""
    return 1.0 - r * r


def convex_schedule(r: float) -> float:
    """gamma(r) = (1 - r)^2: many tokens decided first, few at the end, so that with
    confidence-ordered choice the hard tokens (decided last) come a few per step, each step
    seeing the ones before it."""
    return (1.0 - r) ** 2


def get_schedule(name: str) -> MaskSchedule:
    """The mask schedule ``name``; a ValueError naming the valid ones."""
    schedules = {"cosine": cosine_schedule, "linear": linear_schedule, "square": square_schedule,
                 "convex": convex_schedule}  # fmt: skip
    if name not in schedules:
        raise ValueError(f"unknown mask schedule {name!r}; valid: {', '.join(SCHEDULE_NAMES)}")
    return schedules[name]


def decode_step(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    *,
    mask_id: int,
    remask: torch.Tensor,
    generators: Sequence[torch.Generator],
    temperature: float,
    choice_temperature: float,
) -> torch.Tensor:
    """One step: every unknown position of ``tokens`` (B, n) drawn from ``logits`` (B, n, K),
    then the ``remask`` (B,) least confident of them masked again. Known tokens never change;
    ``remask`` is clamped below each row's unknown count."""
    unknown = tokens == mask_id  # (B, n)
    remask = torch.minimum(remask, unknown.sum(1)).clamp(min=0)
    drawn = sample_logits(logits, generators, temperature=temperature)  # (B, n)
    drawn = torch.where(unknown, drawn, tokens)
    log_p = logits.float().log_softmax(-1).gather(-1, drawn[..., None])[..., 0]  # (B, n)
    confidence = log_p
    if choice_temperature > 0:
        noise = gumbel_noise(tokens.shape, generators, tokens.device)
        confidence = log_p + choice_temperature * noise
    confidence = confidence.masked_fill(~unknown, torch.inf)
    order = confidence.argsort(dim=1, stable=True)  # least confident first
    positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)  # (B, n): rank of each position
    return drawn.masked_fill(rank < remask[:, None], mask_id)


@torch.no_grad()
def masked_decode(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    generators: Sequence[torch.Generator],
    temperature: float = 1.0,
    choice_temperature: float = 4.5,
    schedule: MaskSchedule = cosine_schedule,
    callback: TokenCallback | None = None,
) -> torch.Tensor:
    """Fill every ``mask_id`` of ``tokens`` (B, n) in ``steps`` parallel steps (MaskGIT); row b
    draws with ``generators[b]``. ``choice_temperature`` t_c scales the noise on the confidence,
    annealed to 0 at the last step."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if len(generators) != tokens.shape[0]:
        raise ValueError(f"{tokens.shape[0]} images but {len(generators)} generators")
    unknown_at_start = (tokens == mask_id).sum(1)  # U_0 (B,)
    for s in range(steps):
        r = (s + 1) / steps
        logits = logits_fn(tokens)  # (B, n, K)
        if s == steps - 1:
            remask = torch.zeros_like(unknown_at_start)
        else:
            target = [math.floor(u * schedule(r)) for u in unknown_at_start.tolist()]
            unknown = (tokens == mask_id).sum(1)
            # At least one token decided, and one left unknown, per step (as in MaskGIT).
            remask = torch.minimum(torch.tensor(target).to(unknown).clamp(min=1), unknown - 1)
        tokens = decode_step(
            logits, tokens, mask_id=mask_id, remask=remask, generators=generators,
            temperature=temperature, choice_temperature=choice_temperature * (1 - r),
        )  # fmt: skip
        if callback is not None:
            callback(TokenStep(s, steps, tokens))
    return tokens
