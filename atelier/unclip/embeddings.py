"""Operations on CLIP embeddings: unit vectors of width E in the space CLIP trained its image and
text towers to agree in.

Notation (Ramesh et al. 2022, section 3): z_i an image embedding, z_t a caption's text
embedding, each (B, E) and of unit length. Every function takes and returns unit vectors except
where it says otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pick_closer(candidates: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
    """DALL-E 2's pick: of K prior samples per caption (B, K, E), the one with the largest dot
    product with its text embedding z_t (B, E) -> (B, E) (section 2.2: "we sample two copies
    of z_i from the prior and select the one with a higher dot product with z_t").

    A tie (the empty prompt's z_t is the zero vector, so every dot product is 0) keeps the
    first candidate.
    """
    if candidates.ndim != 3 or z_t.shape != (candidates.shape[0], candidates.shape[2]):
        raise ValueError(
            f"candidates must be (B, K, E) and z_t (B, E), got {tuple(candidates.shape)} and "
            f"{tuple(z_t.shape)}"
        )
    scores = torch.einsum("bke,be->bk", candidates, z_t.to(candidates))  # (B, K)
    best = scores.argmax(dim=1)  # (B,), the first of equal maxima
    return candidates[torch.arange(len(candidates), device=candidates.device), best]


def slerp(a: torch.Tensor, b: torch.Tensor, theta: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit vectors (B, E): theta = 0 gives ``a``, 1 gives ``b``,
    along the great circle between them (Shoemake 1985; DALL-E 2's interpolations and text diffs
    rotate this way, keeping the norm CLIP's embeddings have). ``theta`` is one number, one per
    row, or for one pair of ends (1, E) any T of them, giving the path (T, E); 0 and 1 give the
    ends bit for bit."""
    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate {tuple(a.shape)} and {tuple(b.shape)}")
    theta = torch.as_tensor(theta, dtype=a.dtype, device=a.device).reshape(-1, 1)  # (B or 1, 1)
    dot = (a * b).sum(-1, keepdim=True).clamp(-1.0, 1.0)  # (B, 1)
    omega = dot.acos()
    sin = omega.sin()
    # Nearly parallel vectors: sin(omega) -> 0 and the weights tend to the linear ones.
    near = sin.abs() < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    w_a = torch.where(near, 1 - theta, ((1 - theta) * omega).sin() / safe)
    w_b = torch.where(near, theta, (theta * omega).sin() / safe)
    path = F.normalize(w_a * a + w_b * b, dim=-1)
    # The ends exactly (renormalising may move a unit vector's last bit): an interpolation's
    # first and last frames decode the two embeddings themselves.
    return torch.where(theta == 0, a, torch.where(theta == 1, b, path))


def text_diff(
    z_i: torch.Tensor, z_t: torch.Tensor, z_t0: torch.Tensor, amount: float
) -> torch.Tensor:
    """DALL-E 2's text diff (section 3.3): move image embeddings z_i (B, E) toward a new caption
    z_t and away from the current one z_t0 (each (B, E) or (1, E)): with the diff direction
    z_d = norm(z_t - z_t0), the result is slerp(z_i, z_d, amount). ``amount`` in [0, 1]; the
    paper shows 0 to 0.5, past which the image loses what the captions do not name."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount!r}")
    direction = z_t - z_t0
    if bool((direction.norm(dim=-1) < 1e-6).any()):
        raise ValueError("the two captions have the same CLIP embedding: there is no direction "
                         "between them to move along")  # fmt: skip
    z_d = F.normalize(direction, dim=-1).expand_as(z_i)
    return slerp(z_i, z_d, amount)
