"""Stable Diffusion's KL-regularised autoencoder (Rombach et al., 2022), sized by a config.

Notation: x (B, C, H, W) an image in [-1, 1], f = 2^(L-1) the downsampling factor of an L-level
autoencoder, z (B, c, H/f, W/f) its latent with c = ``latent_channels``, C_i =
``block_channels[i]`` the width at level i. The encoder E maps x to the moments (mean, log
variance) of a diagonal Gaussian posterior q(z | x); the decoder D maps a latent back to
x_tilde = D(z). A small KL penalty towards N(0, I) keeps the latent space from drifting to
arbitrary scales (section 3 and appendix G of the paper).

E is ``conv_in``, one down block per level (residual blocks, then a stride-2 conv except at the
last level), a middle block (resnet, optional single-head self-attention, resnet), then
GroupNorm, SiLU and ``conv_out`` to 2c channels. D mirrors it: ``conv_in``, middle block, one up
block per level in reverse (one more resnet than the encoder's, then nearest-neighbour
upsampling and a conv), GroupNorm, SiLU, ``conv_out``. 1x1 ``quant_conv`` and
``post_quant_conv`` sit between them and the latent. Parameter names follow diffusers'
``AutoencoderKL`` so that weights convert by a short rename map
(:mod:`atelier.models.vae_diffusers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from atelier.models.unet import Upsample

# Stable Diffusion's bounds on the posterior log variance: exp(-30) is a point mass for practical
# purposes, and exp(20) is far beyond any useful spread, so clamping only removes overflow.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
# Every norm in the autoencoder uses 1e-6, not PyTorch's 1e-5: what the released weights expect.
NORM_EPS = 1e-6

PaddingMode = Literal["zeros", "replicate"]
PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of an :class:`AutoencoderKL`; every field is a plain value so configs serialise as-is.

    The downsampling factor is f = 2^(len(block_channels) - 1): (32, 64, 128) gives f = 4,
    Stable Diffusion's (128, 256, 512, 512) gives f = 8. ``mid_attention`` adds a self-attention
    layer to both middle blocks (Stable Diffusion has it; on a CPU it is the costliest layer).

    ``padding_mode`` is how every 3x3 conv sees past the border. Zeros (Stable Diffusion's) let
    the network tell how far each position is from the edge, and it uses that: shapes-vqgan's
    encoder, zero-padded, gives a blank 64 px image 47 distinct codes in rings from the border,
    so the white background has no one code and a token model must learn where each ring goes.
    ``"replicate"`` carries no position: a constant image stays constant through every layer
    (conv, GroupNorm, nearest upsampling) and so is one code everywhere.
    """

    in_channels: int = 3
    latent_channels: int = 4
    block_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    groups: int = 32
    mid_attention: bool = True
    padding_mode: PaddingMode = "zeros"

    def __post_init__(self) -> None:
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, "
                             f"got {self.padding_mode!r}")  # fmt: skip
        positive = {
            "in_channels": self.in_channels,
            "latent_channels": self.latent_channels,
            "layers_per_block": self.layers_per_block,
            "groups": self.groups,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.block_channels or min(self.block_channels) < 1:
            raise ValueError(f"block_channels must be positive widths, got {self.block_channels}")
        if any(c % self.groups for c in self.block_channels):
            raise ValueError(
                f"block_channels {self.block_channels} not divisible by groups {self.groups}"
            )

    @property
    def downsampling_factor(self) -> int:
        """f: how many pixels along each side one latent position stands for."""
        return 2 ** (len(self.block_channels) - 1)


class DiagonalGaussian:
    """The posterior q(z | x) = N(mean, diag(exp(logvar))) read off the encoder's moments."""

    def __init__(self, moments: torch.Tensor) -> None:
        """``moments`` (B, 2c, h, w): the mean's c channels, then the log variance's."""
        self.mean, logvar = moments.chunk(2, dim=1)  # (B, c, h, w) each
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterised draw z = mean + std * eps, differentiable in mean and logvar."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) in nats, summed over each image's latent elements: (B,)."""
        var = torch.exp(self.logvar)
        return 0.5 * (self.mean.pow(2) + var - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class ResnetBlock(nn.Module):
    """Two GroupNorm-SiLU-conv layers plus a skip (a 1x1 conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int,
                 padding_mode: PaddingMode = "zeros") -> None:  # fmt: skip
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=NORM_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1,
                               padding_mode=padding_mode)  # fmt: skip
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C_in, H, W) -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.conv_shortcut(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all H * W positions, with GroupNorm before and a residual.

    Unlike the UNet's attention, q, k and v have biases: the released autoencoder was trained so.
    """

    def __init__(self, channels: int, *, groups: int) -> None:
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=NORM_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> (B, C, H, W)."""
        _, _, height, width = x.shape
        h = self.group_norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = (proj(h).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))  # (B,1,N,C)
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # (B, N, C)
        h = self.to_out(h).transpose(1, 2).unflatten(2, (height, width))  # (B, C, H, W)
        return x + h


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 conv, padding only right and bottom.

    Stable Diffusion pads asymmetrically so that each output pixel's 3x3 window starts on an even
    input pixel; the weights were trained with that alignment.
    """

    def __init__(self, channels: int, *, padding_mode: PaddingMode = "zeros") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)
        self.pad_mode = "constant" if padding_mode == "zeros" else padding_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode=self.pad_mode))  # (B, C, H/2, W/2)


class DownBlock(nn.Module):
    """One encoder level: resnets, then a downsample unless it is the last level."""

    def __init__(self, resnets: list[ResnetBlock], downsample: Downsample | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.downsample = downsample

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            h = resnet(h)
        return h if self.downsample is None else self.downsample(h)


class UpBlock(nn.Module):
    """One decoder level: resnets, then an upsample unless it is level 0."""

    def __init__(self, resnets: list[ResnetBlock], upsample: Upsample | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.upsample = upsample

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            h = resnet(h)
        return h if self.upsample is None else self.upsample(h)


class MidBlock(nn.Module):
    """The bottleneck: resnet, optional self-attention, resnet at the lowest resolution."""

    def __init__(self, channels: int, *, groups: int, attention: bool,
                 padding_mode: PaddingMode = "zeros") -> None:  # fmt: skip
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock(channels, channels, groups=groups, padding_mode=padding_mode)
                for _ in range(2)
            ]  # fmt: skip
        )
        self.attentions = nn.ModuleList(
            [AttentionBlock(channels, groups=groups)] if attention else []
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.resnets[0](h)
        for attention in self.attentions:
            h = attention(h)
        return self.resnets[1](h)


class Encoder(nn.Module):
    """E: image x (B, C, H, W) -> posterior moments (B, 2c, H/f, W/f), before ``quant_conv``.

    ``out_channels`` replaces the 2c moment channels (an image tokenizer's encoder outputs the
    D channels its quantizer reads).
    """

    def __init__(self, config: VAEConfig, *, out_channels: int | None = None) -> None:
        super().__init__()
        widths, groups, pad = config.block_channels, config.groups, config.padding_mode
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], 3, padding=1, padding_mode=pad)
        self.down_blocks = nn.ModuleList()
        for level, width in enumerate(widths):
            previous = widths[max(level - 1, 0)]
            resnets = [
                ResnetBlock(previous if j == 0 else width, width, groups=groups, padding_mode=pad)
                for j in range(config.layers_per_block)
            ]
            last = level == len(widths) - 1
            down = None if last else Downsample(width, padding_mode=pad)
            self.down_blocks.append(DownBlock(resnets, down))
        self.mid_block = MidBlock(widths[-1], groups=groups, attention=config.mid_attention,
                                  padding_mode=pad)  # fmt: skip
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=NORM_EPS)
        out_channels = 2 * config.latent_channels if out_channels is None else out_channels
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1, padding_mode=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, C_0, H, W)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)  # (B, C_last, H/f, W/f)
        return self.conv_out(F.silu(self.conv_norm_out(h)))  # (B, 2c or out, H/f, W/f)


class Decoder(nn.Module):
    """D: latent (B, c, h, w), after ``post_quant_conv`` -> image (B, C, f h, f w)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths, groups, pad = config.block_channels, config.groups, config.padding_mode
        self.conv_in = nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1,
                                 padding_mode=pad)  # fmt: skip
        self.mid_block = MidBlock(widths[-1], groups=groups, attention=config.mid_attention,
                                  padding_mode=pad)  # fmt: skip
        self.up_blocks = nn.ModuleList()
        h_width = widths[-1]
        for level in reversed(range(len(widths))):
            width = widths[level]
            # One more resnet per level than the encoder, as in Stable Diffusion's decoder.
            resnets = []
            for _ in range(config.layers_per_block + 1):
                resnets.append(ResnetBlock(h_width, width, groups=groups, padding_mode=pad))
                h_width = width
            up = Upsample(width, padding_mode=pad) if level > 0 else None
            self.up_blocks.append(UpBlock(resnets, up))
        self.conv_norm_out = nn.GroupNorm(groups, widths[0], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(widths[0], config.in_channels, 3, padding=1, padding_mode=pad)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))  # (B, C_last, h, w)
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))  # (B, C, f h, f w)


class AutoencoderKL(nn.Module):
    """x -> q(z | x) with :meth:`encode`, z -> x_tilde with :meth:`decode`.

    Latents are unscaled: multiply by a scale factor (see
    :func:`atelier.training.vae_loss.measure_scale_factor`) before a diffusion model sees them.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config.latent_channels
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(2 * c, 2 * c, 1)
        self.post_quant_conv = nn.Conv2d(c, c, 1)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """``x`` (B, C, H, W) with H and W multiples of f -> q(z | x) over (B, c, H/f, W/f)."""
        self._check_image(x)
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (B, c, h, w) -> x_tilde (B, C, f h, f w)."""
        c = self.config.latent_channels
        if z.ndim != 4 or z.shape[1] != c:
            raise ValueError(f"z must be (B, {c}, h, w), got {tuple(z.shape)}")
        return self.decoder(self.post_quant_conv(z))

    def forward(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """The training pass: x_tilde = D(z) with z drawn from q(z | x), and q itself (for KL)."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """x -> D(mode of q(z | x)), clamped to [-1, 1]: what the autoencoder keeps of ``x``."""
        return self.decode(self.encode(x).mode()).clamp(-1, 1)

    def _check_image(self, x: torch.Tensor) -> None:
        check_image(x, channels=self.config.in_channels, factor=self.config.downsampling_factor)


def check_image(x: torch.Tensor, *, channels: int, factor: int, what: str = "this VAE") -> None:
    """Refuse an image batch an autoencoder of ``factor`` f cannot encode, naming valid sizes."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"x must be (B, {channels}, H, W), got {tuple(x.shape)}")
    bad = [size for size in x.shape[2:] if size % factor]
    if bad:
        # Each stride-2 conv rounds an odd size down, so D(E(x)) would come out smaller than x.
        f = factor
        nearest = sorted({n for size in bad for n in (size // f * f, (size // f + 1) * f) if n})
        raise ValueError(
            f"{what} (f={f}) takes H and W that are multiples of {f} "
            f"(nearest: {', '.join(map(str, nearest))}), got {tuple(x.shape[2:])}"
        )
