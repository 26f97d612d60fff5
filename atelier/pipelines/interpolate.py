"""Paths between two draws of a model: slerp for Gaussian noise, lerp for text embeddings.

A straight line between two samples of N(0, I) in many dimensions passes near the origin, where
almost no noise of the training distribution lies (its norm is about sqrt(n) everywhere), so the
frames in the middle fade toward the mean image. Spherical interpolation (Shoemake, 1985; for
GAN latents White, 2016, "Sampling generative networks") keeps to the arc between them, and the
norm stays typical. Text embeddings are not Gaussian; they are interpolated linearly, token
state by token state, attending to every position either prompt attends to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from atelier.text.encoder import TextEmbedding


def frame_weights(frames: int) -> list[float]:
    """``frames`` evenly spaced t from 0 to 1 (both ends included); at least 2."""
    if frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
    return [k / (frames - 1) for k in range(frames)]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """sin((1 - t) omega) / sin(omega) a + sin(t omega) / sin(omega) b, omega the angle between
    ``a`` and ``b`` taken whole (every element one coordinate); where they are (anti)parallel or
    zero the angle is undefined and the line is used."""
    if a.shape != b.shape:
        raise ValueError(f"slerp needs tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")  # fmt: skip
    x, y = a.double().flatten(), b.double().flatten()
    norms = x.norm() * y.norm()
    cos = (x @ y / norms).clamp(-1, 1) if norms > 0 else torch.tensor(1.0, dtype=torch.float64)
    omega = torch.arccos(cos)
    if torch.sin(omega).abs() < 1e-6:
        out = (1 - t) * x + t * y
    else:
        out = (torch.sin((1 - t) * omega) * x + torch.sin(t * omega) * y) / torch.sin(omega)
    return out.reshape(a.shape).to(a.dtype)


def lerp_text(a: TextEmbedding, b: TextEmbedding, t: float) -> TextEmbedding:
    """(1 - t) a + t b for states and pooled vectors; the mask is either's (a state is zero
    wherever its own mask is False, so the line fades a token in or out)."""
    if a.states.shape != b.states.shape:
        raise ValueError("text embeddings of different encoders cannot be interpolated")
    return TextEmbedding(
        states=torch.lerp(a.states, b.states, t),
        mask=a.mask | b.mask,
        pooled=torch.lerp(a.pooled, b.pooled, t),
    )


def join_text(rows: Sequence[TextEmbedding]) -> TextEmbedding:
    """Embeddings of one encoder concatenated along the batch."""
    return TextEmbedding(
        states=torch.cat([r.states for r in rows]),
        mask=torch.cat([r.mask for r in rows]),
        pooled=torch.cat([r.pooled for r in rows]),
    )


def noise_path(a: torch.Tensor, b: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """slerp(a, b, t) for every t, stacked (F, ...)."""
    return torch.stack([slerp(a, b, t) for t in weights])


def text_path(a: TextEmbedding, b: TextEmbedding, weights: Sequence[float]) -> TextEmbedding:
    """lerp_text(a, b, t) for every t, joined (F, ...); ``a`` and ``b`` one prompt each."""
    return join_text([lerp_text(a, b, t) for t in weights])
