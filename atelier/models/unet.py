"""The Stable Diffusion UNet (Rombach et al., 2022, after Ho et al., 2020), sized by a config.

Notation: x (B, C_in, H, W) the noisy input, t (B,) float timesteps, C_i = ``block_channels[i]``
the width at level i (resolution H / 2^i), E = 4 * C_0 the time-embedding width, and the text
conditioning a :class:`~atelier.text.encoder.TextEmbedding` with states (B, T, D), mask (B, T)
and pooled (B, P).

The network is ``conv_in``, one down block per level (residual blocks, optional
:class:`~atelier.models.attention.SpatialTransformer`\\ s, a stride-2 conv except at the last
level), a middle block (resnet, transformer, resnet), one up block per level in reverse (each
residual block also reads the matching down-path activation), then GroupNorm, SiLU and
``conv_out``. The timestep enters every residual block through its sinusoidal embedding and an
MLP; a pooled text vector, if configured, is projected and added to it (as in GLIDE, Nichol et
al., 2021). An unCLIP decoder (Ramesh et al., 2022) is also conditioned on a CLIP image
embedding z_i (B, E): projected and added to the time embedding, and projected to K extra
context tokens that every cross-attention reads before the caption's (:class:`ImageCondition`).
A latent consistency model (Luo et al., 2023) distilled from a guided teacher takes the guidance
scale s as an input: LCM's w-embedding, projected onto the timestep's sinusoids.
Parameter names follow diffusers' ``UNet2DConditionModel`` so that weights convert
with a short rename map (:mod:`atelier.models.unet_diffusers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from atelier.models.attention import SpatialTransformer
from atelier.text.encoder import TextEmbedding

TimeInjection = Literal["add", "scale_shift"]


def coordinate_grid(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W): each pixel centre's (y, x) in [-1, 1], like ``x``'s dtype and device."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2, H, W)
    return grid.expand(b, -1, -1, -1)


@dataclass(frozen=True)
class UNetConfig:
    """Sizes of a :class:`UNet`; every field is a plain value so configs serialise as-is.

    ``attention_levels[i]`` says whether level i has transformer blocks (the middle block always
    has one). Give exactly one of ``heads`` (the same count at every level) or ``head_dim``
    (heads = C_i / head_dim). ``context_dim=None`` builds an unconditional UNet without
    cross-attention; ``pooled_dim`` adds the projected pooled text vector to the time embedding.
    ``time_injection`` is how a residual block takes the time embedding: ``"add"`` (Stable
    Diffusion) adds it before the second GroupNorm, ``"scale_shift"`` (Dhariwal & Nichol, 2021)
    modulates the normalised features with it.
    """

    in_channels: int = 4
    out_channels: int = 4
    block_channels: tuple[int, ...] = (64, 128, 256)
    layers_per_block: int = 2
    # Attention at the full-resolution level costs the most on a CPU and helps the least.
    attention_levels: tuple[bool, ...] = (False, True, True)
    heads: int | None = 4
    head_dim: int | None = None
    context_dim: int | None = 384
    pooled_dim: int | None = None
    transformer_depth: int = 1
    groups: int = 32
    time_injection: TimeInjection = "add"
    # CoordConv (Liu et al. 2018): two extra input channels holding each pixel's (y, x) in
    # [-1, 1]. Convolutions are translation-equivariant and know absolute position only from
    # padding, so "a red circle in the top left" is slow to learn without them.
    coord_channels: bool = False
    # Imagen / SR3 super-resolution: the level of the noise that augmented the low-resolution
    # conditioning image, embedded like a timestep and added to the time embedding.
    noise_level_conditioning: bool = False
    # Learned position embeddings at every transformer block's input (see SpatialTransformer):
    # lets cross-attention tie "top left" to the top-left tokens directly.
    attention_positions: bool = False
    # Per level: its transformer blocks attend to the text twice instead of to themselves and
    # then the text (diffusers' ``only_cross_attention``; the middle block keeps self-attention).
    # Text reaches a high-resolution level at a fraction of self-attention's cost there.
    cross_attention_only: tuple[bool, ...] | None = None
    # unCLIP's decoder: the width E of the CLIP image embedding it draws (None: not one), and the
    # context tokens it becomes beside the caption's (DALL-E 2 uses four).
    image_embed_dim: int | None = None
    image_embed_tokens: int = 4
    # LCM's w-embedding: the classifier-free guidance scale a distilled student was taught with,
    # an input (``forward(..., guidance=)``) in place of guidance's second, unconditional pass.
    guidance_embedding: bool = False

    def __post_init__(self) -> None:
        positive = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "layers_per_block": self.layers_per_block,
            "transformer_depth": self.transformer_depth,
            "groups": self.groups,
            "heads": self.heads,
            "head_dim": self.head_dim,
            "context_dim": self.context_dim,
            "pooled_dim": self.pooled_dim,
            "image_embed_dim": self.image_embed_dim,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.block_channels or min(self.block_channels) < 1:
            raise ValueError(f"block_channels must be positive widths, got {self.block_channels}")
        if self.block_channels[0] % 2:
            raise ValueError(
                f"block_channels[0] must be even (sin/cos pairs), got {self.block_channels}"
            )
        if any(c % self.groups for c in self.block_channels):
            raise ValueError(
                f"block_channels {self.block_channels} not divisible by groups {self.groups}"
            )
        if len(self.attention_levels) != len(self.block_channels):
            raise ValueError(
                f"attention_levels {self.attention_levels} needs one entry per level of "
                f"block_channels {self.block_channels}"
            )
        if self.cross_attention_only is not None:
            object.__setattr__(self, "cross_attention_only", tuple(self.cross_attention_only))
            if len(self.cross_attention_only) != len(self.block_channels):
                raise ValueError(
                    f"cross_attention_only {self.cross_attention_only} needs one entry per level "
                    f"of block_channels {self.block_channels}"
                )
            if any(c and not a for c, a in zip(self.cross_attention_only, self.attention_levels)):
                raise ValueError(
                    f"cross_attention_only {self.cross_attention_only} sets a level that "
                    f"attention_levels {self.attention_levels} leaves without attention"
                )
            if any(self.cross_attention_only) and self.context_dim is None:
                raise ValueError("cross_attention_only needs context_dim: text to attend to")
        if isinstance(self.image_embed_tokens, bool) or self.image_embed_tokens < 0:
            raise ValueError(f"image_embed_tokens must be >= 0, got {self.image_embed_tokens!r}")
        if self.image_embed_dim is not None and self.image_embed_tokens and not self.context_dim:
            raise ValueError("image_embed_tokens need context_dim: cross-attention to read them "
                             "(or set image_embed_tokens=0)")  # fmt: skip
        if (self.heads is None) == (self.head_dim is None):
            raise ValueError("give exactly one of heads and head_dim")
        # The middle block at the last level always attends.
        attending = {i for i, on in enumerate(self.attention_levels) if on}
        for level in attending | {len(self.block_channels) - 1}:
            width, per_head = self.block_channels[level], self.head_dim or self.heads
            if width % per_head:
                raise ValueError(f"level {level} width {width} not divisible by {per_head}")
        if self.time_injection not in ("add", "scale_shift"):
            raise ValueError(
                f"time_injection must be 'add' or 'scale_shift', got {self.time_injection!r}"
            )

    def heads_at(self, level: int) -> int:
        """Attention heads of the transformer blocks at ``level`` (the last one for the middle)."""
        return self.heads or self.block_channels[level] // self.head_dim


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoids of ``t`` (B,) -> (B, dim): cosines first, then sines, float32."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )  # (dim/2,)
    angles = t.float()[:, None] * freqs[None, :]  # (B, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def guidance_scale_embedding(scale: torch.Tensor, dim: int) -> torch.Tensor:
    """LCM's w-embedding of guidance scales s (B,) -> (B, dim), float32: sines then cosines of
    1000 w, w = s - 1 (LCM's w, guidance's weight beyond the conditional model), at frequencies
    10000^(-i / (dim/2 - 1)), as diffusers' LatentConsistencyModelPipeline computes it."""
    half = dim // 2
    # The angles reach 10^4 radians, so the frequencies are rounded as diffusers rounds them.
    step = torch.tensor(10000.0, device=scale.device).log() / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=scale.device) * -step)
    angles = (scale.float() - 1) * 1000.0
    angles = angles[:, None] * freqs[None, :]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RowLinear(nn.Linear):
    """``nn.Linear`` over per-image vectors (B, in), one row per matmul. BLAS blocks a matmul by
    its row count, so a batched row's bits would depend on B (on this machine's MKL, 6 rows give
    other bits than 5), and a batch run in wide chunks could never match single images
    (``pipelines/fixed_batch.py``). Its parameters, and so its state dict, are nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.linear(row, self.weight, self.bias) for row in x.split(1)])


class EmbeddingMLP(nn.Module):
    """Linear, SiLU, Linear: lifts a timestep sinusoid or a pooled text vector to width E;
    ``rowwise``, a row at a time (:class:`RowLinear`).

    With ``cond_dim``, a condition (B, cond_dim) is projected onto the input first (diffusers'
    ``cond_proj``); the projection starts at zero, so the network starts as the one without it.
    """

    def __init__(
        self, in_dim: int, dim: int, *, cond_dim: int | None = None, rowwise: bool = False
    ) -> None:
        super().__init__()
        linear = RowLinear if rowwise else nn.Linear
        self.cond_proj = None
        if cond_dim is not None:
            self.cond_proj = linear(cond_dim, in_dim, bias=False)
            nn.init.zeros_(self.cond_proj.weight)
        self.linear_1 = linear(in_dim, dim)
        self.linear_2 = linear(dim, dim)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            x = x + self.cond_proj(condition)  # (B, in_dim)
        return self.linear_2(F.silu(self.linear_1(x)))


class ResBlock(nn.Module):
    """Two GroupNorm-SiLU-conv layers with the time embedding injected between, plus a skip."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        time_dim: int,
        groups: int,
        time_injection: TimeInjection,
    ) -> None:
        super().__init__()
        self.time_injection = time_injection
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        scale_shift = time_injection == "scale_shift"
        self.time_emb_proj = RowLinear(time_dim, out_channels * (2 if scale_shift else 1))
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C_in, H, W), ``emb`` (B, E) -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        e = self.time_emb_proj(F.silu(emb))[:, :, None, None]  # (B, C_out or 2 C_out, 1, 1)
        if self.time_injection == "add":
            h = self.norm2(h + e)
        else:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        return self.conv_shortcut(x) + self.conv2(F.silu(h))


class Downsample(nn.Module):
    """Halve the resolution with a learned stride-2 conv (not pooling, as in Stable Diffusion)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour then a conv, which avoids checkerboard artefacts."""

    def __init__(self, channels: int, *, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


Conditioning = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]  # emb, states, mask


@dataclass(frozen=True)
class ImageCondition:
    """What an unCLIP decoder draws: CLIP image embeddings ``embeds`` (B, E), unit vectors, and
    ``dropped`` (B,) bool, True where the learned null embedding stands in for them (training's
    dropout, and classifier-free guidance's unconditional rows). A dropped row's embedding is
    never read."""

    embeds: torch.Tensor
    dropped: torch.Tensor


class ImageEmbeddingProjection(nn.Module):
    """z_i (B, E) -> an addition to the time embedding (B, E_t) and K context tokens (B, K, D),
    as DALL-E 2's decoder takes it (after GLIDE's, which read a caption the same two ways)."""

    def __init__(self, embed_dim: int, time_dim: int, context_dim: int | None, tokens: int) -> None:
        super().__init__()
        self.null = nn.Parameter(torch.zeros(embed_dim))
        self.to_time = RowLinear(embed_dim, time_dim)
        self.tokens = tokens
        self.to_tokens = RowLinear(embed_dim, tokens * context_dim) if tokens else None

    def forward(self, image: ImageCondition) -> tuple[torch.Tensor, torch.Tensor | None]:
        embeds = image.embeds
        z = torch.where(image.dropped[:, None], self.null.to(embeds.dtype), embeds)  # (B, E)
        # Unit embeddings have components near 1 / sqrt(E); scaled, they enter at unit scale.
        z = z * z.shape[1] ** 0.5
        if self.to_tokens is None:
            return self.to_time(z), None
        return self.to_time(z), self.to_tokens(z).unflatten(1, (self.tokens, -1))  # (B, K, D)


class DownBlock(nn.Module):
    """One encoder level: resnets, each followed by a transformer if the level attends, then a
    downsample unless it is the last level."""

    def __init__(
        self,
        resnets: list[ResBlock],
        attentions: list[SpatialTransformer],
        downsample: Downsample | None,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.downsample = downsample

    def forward(
        self, h: torch.Tensor, cond: Conditioning, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        """Run the level, appending every intermediate activation to ``skips`` for the decoder."""
        emb, states, mask = cond
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, emb)
            if self.attentions:
                h = self.attentions[i](h, states, mask)
            skips.append(h)
        if self.downsample is not None:
            h = self.downsample(h)
            skips.append(h)
        return h


class MidBlock(nn.Module):
    """The bottleneck: resnet, transformer, resnet at the lowest resolution."""

    def __init__(self, resnets: list[ResBlock], attention: SpatialTransformer) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList([attention])

    def forward(self, h: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        emb, states, mask = cond
        h = self.resnets[0](h, emb)
        h = self.attentions[0](h, states, mask)
        return self.resnets[1](h, emb)


class UpBlock(nn.Module):
    """One decoder level: resnets (each reading h concatenated with the latest skip), each
    followed by a transformer if the level attends, then an upsample unless it is level 0."""

    def __init__(
        self,
        resnets: list[ResBlock],
        attentions: list[SpatialTransformer],
        upsample: Upsample | None,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.upsample = upsample

    def forward(
        self, h: torch.Tensor, cond: Conditioning, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        """Run the level, popping the encoder activations it consumes from ``skips``."""
        emb, states, mask = cond
        for i, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips.pop()], dim=1), emb)  # (B, C_i, H_i, W_i)
            if self.attentions:
                h = self.attentions[i](h, states, mask)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


class UNet(nn.Module):
    """Noise (or v, or x0) predictor ``forward(x, t, context) -> (B, C_out, H, W)``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths, levels = config.block_channels, len(config.block_channels)
        time_dim = 4 * widths[0]
        resnet = partial(
            ResBlock, time_dim=time_dim, groups=config.groups, time_injection=config.time_injection
        )

        def transformer(level: int, *, mid: bool = False) -> SpatialTransformer:
            only = config.cross_attention_only
            return SpatialTransformer(
                widths[level],
                heads=config.heads_at(level),
                context_dim=config.context_dim,
                depth=config.transformer_depth,
                groups=config.groups,
                positions=config.attention_positions,
                only_cross=bool(only and only[level] and not mid),
            )

        extra = 2 if config.coord_channels else 0
        self.conv_in = nn.Conv2d(config.in_channels + extra, widths[0], 3, padding=1)
        # A student distilled with the guidance scale as an input starts as its teacher: the
        # w-embedding's projection is zero until training moves it.
        vector = partial(EmbeddingMLP, rowwise=True)  # every image's own bits, whatever B
        self.time_embedding = vector(
            widths[0], time_dim, cond_dim=widths[0] if config.guidance_embedding else None
        )
        self.pooled_embedding = (
            vector(config.pooled_dim, time_dim) if config.pooled_dim is not None else None
        )
        self.noise_level_embedding = (
            vector(widths[0], time_dim) if config.noise_level_conditioning else None
        )
        self.image_embedding = None
        if config.image_embed_dim is not None:
            self.image_embedding = ImageEmbeddingProjection(
                config.image_embed_dim, time_dim, config.context_dim, config.image_embed_tokens
            )

        self.down_blocks = nn.ModuleList()
        skip_widths = [widths[0]]  # the channels of each activation the decoder will read back
        for level, width in enumerate(widths):
            previous = widths[max(level - 1, 0)]
            last = level == levels - 1
            n, attend = config.layers_per_block, config.attention_levels[level]
            self.down_blocks.append(
                DownBlock(
                    [resnet(previous if j == 0 else width, width) for j in range(n)],
                    [transformer(level) for _ in range(n)] if attend else [],
                    None if last else Downsample(width),
                )
            )
            skip_widths += [width] * (n if last else n + 1)

        self.mid_block = MidBlock(
            [resnet(widths[-1], widths[-1]), resnet(widths[-1], widths[-1])],
            transformer(levels - 1, mid=True),
        )

        # Each up block has one more resnet than its down block, to consume the downsample's skip
        # (or, at level 0, conv_in's).
        self.up_blocks = nn.ModuleList()
        h_width = widths[-1]
        for level in reversed(range(levels)):
            width, n = widths[level], config.layers_per_block + 1
            attend = config.attention_levels[level]
            resnets = []
            for _ in range(n):
                resnets.append(resnet(h_width + skip_widths.pop(), width))
                h_width = width
            self.up_blocks.append(
                UpBlock(
                    resnets,
                    [transformer(level) for _ in range(n)] if attend else [],
                    Upsample(width) if level > 0 else None,
                )
            )

        self.conv_norm_out = nn.GroupNorm(config.groups, widths[0])
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, 3, padding=1)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: TextEmbedding | None = None,
        noise_level: torch.Tensor | None = None,
        image: ImageCondition | None = None,
        *,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x`` (B, C_in, H, W), ``t`` (B,) float timesteps, text ``context`` -> (B, C_out, H, W).

        ``context`` must be given exactly when the config has ``context_dim``; its masked-out
        positions are never attended to. ``image`` exactly when it has ``image_embed_dim``;
        ``guidance`` (B,), the classifier-free guidance scales s, exactly when it has
        ``guidance_embedding``.
        """
        self._check_inputs(x, t, context)
        self._check_image(x, image)
        self._check_guidance(x, guidance)
        width = self.config.block_channels[0]
        scale = None
        if guidance is not None:
            scale = guidance_scale_embedding(guidance, width).to(x.dtype)  # (B, C_0)
        emb = self.time_embedding(timestep_embedding(t, width).to(x.dtype), scale)
        if (noise_level is None) != (self.noise_level_embedding is None):
            raise ValueError(
                "pass noise_level exactly when the config has noise_level_conditioning"
            )
        if self.noise_level_embedding is not None:
            if noise_level.shape != t.shape:
                raise ValueError(f"noise_level must be (B,) like t, got {tuple(noise_level.shape)}")
            emb = emb + self.noise_level_embedding(
                timestep_embedding(noise_level, width).to(x.dtype)
            )
        states = mask = None
        if context is not None:
            states, mask = context.states, context.mask
            if self.pooled_embedding is not None:
                emb = emb + self.pooled_embedding(context.pooled)  # (B, E)
        if self.image_embedding is not None:
            added, tokens = self.image_embedding(image)
            emb = emb + added.to(emb.dtype)
            if tokens is not None:
                # The image's tokens come first and are always attended to.
                states = torch.cat([tokens.to(states.dtype), states], dim=1)  # (B, K + T, D)
                mask = torch.cat([torch.ones_like(mask[:, : tokens.shape[1]]), mask], dim=1)
        cond = (emb, states, mask)

        if self.config.coord_channels:
            x = torch.cat([x, coordinate_grid(x)], dim=1)  # (B, C_in + 2, H, W)
        h = self.conv_in(x)  # (B, C_0, H, W)
        skips = [h]
        for block in self.down_blocks:
            h = block(h, cond, skips)
        h = self.mid_block(h, cond)  # (B, C_last, H / 2^(L-1), W / 2^(L-1))
        for block in self.up_blocks:
            h = block(h, cond, skips)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    def _check_guidance(self, x: torch.Tensor, guidance: torch.Tensor | None) -> None:
        if (guidance is None) == self.config.guidance_embedding:
            raise ValueError("pass guidance exactly when the config has guidance_embedding (a "
                             "latent consistency model)")  # fmt: skip
        if guidance is not None and guidance.shape != (x.shape[0],):
            raise ValueError(f"guidance must be ({x.shape[0]},), got {tuple(guidance.shape)}")

    def _check_image(self, x: torch.Tensor, image: ImageCondition | None) -> None:
        dim = self.config.image_embed_dim
        if (image is None) != (dim is None):
            raise ValueError(
                "pass image exactly when the config has image_embed_dim (an unCLIP decoder)"
            )
        if image is None:
            return
        b = x.shape[0]
        if image.embeds.shape != (b, dim):
            raise ValueError(f"image.embeds must be ({b}, {dim}), got {tuple(image.embeds.shape)}")
        if image.dropped.shape != (b,) or image.dropped.dtype != torch.bool:
            raise ValueError(f"image.dropped must be bool ({b},)")

    def _check_inputs(
        self, x: torch.Tensor, t: torch.Tensor, context: TextEmbedding | None
    ) -> None:
        config = self.config
        if x.ndim != 4 or x.shape[1] != config.in_channels:
            raise ValueError(f"x must be (B, {config.in_channels}, H, W), got {tuple(x.shape)}")
        factor = 2 ** (len(config.block_channels) - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"H and W must be multiples of {factor}, got {tuple(x.shape[2:])}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be ({x.shape[0]},), got {tuple(t.shape)}")
        if (context is None) != (config.context_dim is None):
            raise ValueError(
                "context is required when context_dim is set and must be None otherwise "
                f"(context_dim={config.context_dim})"
            )
        if context is None:
            return
        batch, length, dim = context.states.shape
        if batch != x.shape[0] or dim != config.context_dim:
            raise ValueError(
                f"context.states must be ({x.shape[0]}, T, {config.context_dim}), "
                f"got {tuple(context.states.shape)}"
            )
        if context.mask.shape != (batch, length) or context.mask.dtype != torch.bool:
            raise ValueError(f"context.mask must be bool ({batch}, {length})")
        if config.pooled_dim is not None and context.pooled.shape != (batch, config.pooled_dim):
            raise ValueError(
                f"context.pooled must be ({batch}, {config.pooled_dim}), "
                f"got {tuple(context.pooled.shape)}"
            )
