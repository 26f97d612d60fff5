"""Autoregressive sampling: tokens drawn one at a time, each from the logits given all before it.

Notation: B images, n tokens per image (h * w, in the order the model was trained on: row-major
for DALL-E), c_i the i-th token. ``next_logits(c_<i) -> logits of c_i`` is the model: a KV-cached
function feeds only c_{i-1} to the network, an uncached one runs it over all of c_<i; the loop is
the same (minGPT's ``generate``; DALL-E, Ramesh et al., 2021).

Image completion (DALL-E's inpainting and outpainting): with known codes k and a keep mask,
c_i = k_i wherever position i is kept (teacher forcing) and c_i is drawn elsewhere. A drawn
token is conditioned on c_<i only, so it cannot see the known tokens after it in row-major order:
a repainted region is drawn to continue what lies above and to its left, not to join what lies
below or to its right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from atelier.tokens.logits import LogitsFn, sample_logits


@dataclass(frozen=True)
class TokenStep:
    """What a callback sees after step ``i`` of ``total``: the tokens so far (B, ...)."""

    i: int
    total: int
    tokens: torch.Tensor


TokenCallback = Callable[[TokenStep], None]


@torch.no_grad()
def sample_autoregressive(
    next_logits: LogitsFn,
    *,
    batch: int,
    length: int,
    generators: Sequence[torch.Generator],
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    known: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    callback: TokenCallback | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Ancestral sampling of ``length`` tokens (B, length) long, c_i ~ softmax(l_i / tau) after
    top-k and top-p filtering, with l_i = next_logits(c_<i) (B, K); row b draws with
    ``generators[b]``. Image completion: ``known`` codes (B, length) are taken where ``keep``
    (B, length, bool) holds and only the other positions are drawn; a drawn token sees the
    known tokens before it, never those after it."""
    if len(generators) != batch:
        raise ValueError(f"batch {batch} but {len(generators)} generators; pass one per image")
    if (known is None) != (keep is None):
        raise ValueError("give known tokens and their keep mask together")
    if known is not None and not known.shape == keep.shape == (batch, length):
        raise ValueError(f"known tokens and keep mask must be ({batch}, {length}), got "
                         f"{tuple(known.shape)} and {tuple(keep.shape)}")  # fmt: skip
    tokens = torch.zeros(batch, 0, dtype=torch.long, device=device)  # c_<0: nothing yet
    for i in range(length):
        logits = next_logits(tokens)  # (B, K)
        # Drawn for kept positions too, so that a row's generator advances the same way
        # whatever the other rows of its batch keep.
        c_i = sample_logits(logits, generators, temperature=temperature, top_k=top_k,
                            top_p=top_p)  # fmt: skip
        if keep is not None:
            c_i = torch.where(keep[:, i].to(c_i.device), known[:, i].to(c_i), c_i)
        tokens = torch.cat([tokens, c_i[:, None]], dim=1)  # (B, i + 1)
        if callback is not None:
            callback(TokenStep(i, length, tokens))
    return tokens
