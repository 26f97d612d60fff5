"""The spatial transformer that lets the Stable Diffusion UNet read text (Rombach et al., 2022).

Notation: B batch, C channels of the feature map, H x W its resolution, N = H * W image tokens,
T text tokens of width D (``context_dim``), h heads. A :class:`SpatialTransformer` treats the
feature map as N tokens and runs ``depth`` :class:`TransformerBlock`\\ s over them: self-attention
among image tokens, cross-attention from image tokens to text states, and a GEGLU feed-forward
(Shazeer, 2020), each pre-normalised with LayerNorm and added back as a residual.

Parameter names follow diffusers' ``Transformer2DModel`` (with ``use_linear_projection=True``)
so that weights convert by a short rename map (see :mod:`atelier.models.unet_diffusers`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017) from x to a context.

    With ``context_dim=None`` it is self-attention: keys and values come from x itself.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        # No bias on q, k, v: as in Stable Diffusion, which keeps the checkpoints compatible.
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` (B, N, C) to ``context`` (B, T, D), or to itself when None.

        ``mask`` (B, T) bool marks the context positions that may be attended to.
        """
        source = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(source), self.to_v(source)  # (B, N|T, C)
        q, k, v = (u.unflatten(-1, (self.heads, -1)).transpose(1, 2) for u in (q, k, v))
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, C/h)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, N, C)


class FeedForward(nn.Module):
    """GEGLU feed-forward: ``proj_out(a * gelu(g))`` with ``[a, g] = geglu(x)``, 4x wide."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.geglu = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.geglu(x).chunk(2, dim=-1)  # (B, N, 4C) each
        return self.proj_out(a * F.gelu(g))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to text (if any), then GEGLU feed-forward.

    ``only_cross=True`` makes the first attention a second cross-attention to the text (diffusers'
    ``only_cross_attention``): no pixel-to-pixel attention, whose cost grows with the square of
    the pixel count, so text can reach a high-resolution level cheaply. Unlike diffusers, that
    first attention also honours the text's padding mask.
    """

    def __init__(
        self, dim: int, heads: int, context_dim: int | None, *, only_cross: bool = False
    ) -> None:
        super().__init__()
        if only_cross and context_dim is None:
            raise ValueError("only_cross needs a context_dim: there is no text to attend to")
        self.only_cross = only_cross
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, context_dim if only_cross else None)
        self.norm2: nn.LayerNorm | None = None
        self.attn2: Attention | None = None
        if context_dim is not None:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        if self.only_cross:
            x = x + self.attn1(self.norm1(x), context, mask)  # (B, N, C)
        else:
            x = x + self.attn1(self.norm1(x))
        if self.attn2 is not None:
            x = x + self.attn2(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


def fourier_positions(height: int, width: int, *, bands: int = 4, device=None) -> torch.Tensor:
    """(H * W, 4 * bands): sin and cos of 2^k pi y and 2^k pi x, k < bands, for each pixel
    centre (y, x) in [-1, 1], row-major like a flattened feature map."""
    ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=device)
    xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)  # (N, 2)
    freqs = (2.0 ** torch.arange(bands, device=device)) * torch.pi  # (bands,)
    angles = (grid[:, :, None] * freqs).flatten(1)  # (N, 2 * bands)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class SpatialTransformer(nn.Module):
    """GroupNorm, per-pixel ``proj_in``, ``depth`` transformer blocks, ``proj_out``, residual.

    ``positions=True`` adds a learned projection of fixed Fourier features of each pixel's
    position to the tokens after ``proj_in`` (as transformers add positional embeddings), so a
    token's query can depend on where it is; the projection starts at zero, so the block starts
    out as the position-free one.
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int,
        context_dim: int | None,
        depth: int,
        groups: int,
        positions: bool = False,
        only_cross: bool = False,
    ) -> None:
        super().__init__()
        self.position_embedding = nn.Linear(16, channels) if positions else None
        if self.position_embedding is not None:
            nn.init.zeros_(self.position_embedding.weight)
            nn.init.zeros_(self.position_embedding.bias)
        # eps 1e-6 (not the resnets' 1e-5) is what Stable Diffusion trained with.
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(channels, heads, context_dim, only_cross=only_cross)
            for _ in range(depth)
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``x`` (B, C, H, W), ``context`` (B, T, D), ``mask`` (B, T) bool -> (B, C, H, W)."""
        _, _, height, width = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        h = self.proj_in(h)
        if self.position_embedding is not None:
            fourier = fourier_positions(height, width, device=h.device).to(h.dtype)  # (N, 16)
            h = h + self.position_embedding(fourier)  # (B, N, C)
        for block in self.transformer_blocks:
            h = block(h, context, mask)
        h = self.proj_out(h).transpose(1, 2).unflatten(2, (height, width))  # (B, C, H, W)
        return x + h
