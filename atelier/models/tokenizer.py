"""An image tokenizer: images to a grid of codebook indices and back (VQGAN, DALL-E's dVAE).

Notation: x (B, C, H, W) an image in [-1, 1], f = 2^(L-1) the downsampling factor of L levels,
h = H / f and w = W / f the token grid, D = ``embed_dim``, K = ``codebook_size``. The encoder E
and decoder G are the KL autoencoder's (:mod:`atelier.models.vae`), with E ending in D channels
instead of the posterior's moments; a :class:`~atelier.models.quantizer.Quantizer` sits between
them:

    z = E(x) (B, D, h, w),   (z_q, c) = Q(z),   x_tilde = G(z_q),   c (B, h, w) in [0, K)

``quantizer="vq"`` is VQGAN's bottleneck (Esser et al., 2021) with an EMA codebook,
``"gumbel"`` DALL-E's (Ramesh et al., 2021). A token model predicts c; :meth:`decode_codes`
draws its image. At 64 px, three levels give 16 x 16 tokens, four give 8 x 8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from atelier.models.quantizer import GumbelQuantizer, Quantized, Quantizer, VectorQuantizer
from atelier.models.vae import Decoder, Encoder, PaddingMode, VAEConfig, check_image

QuantizerKind = Literal["vq", "gumbel"]
QUANTIZERS: tuple[str, ...] = get_args(QuantizerKind)


@dataclass(frozen=True)
class TokenizerConfig:
    """Sizes of an :class:`ImageTokenizer`; every field a plain value, so it serialises as-is.

    ``beta``, ``decay``, ``eps`` and ``dead_after`` configure the VQ quantizer (commitment
    weight, EMA decay, Laplace smoothing, steps before an unused code restarts), ``kl_weight``
    the Gumbel one (its KL to the uniform prior); each quantizer ignores the other's fields.
    """

    in_channels: int = 3
    block_channels: tuple[int, ...] = (32, 32, 64)
    layers_per_block: int = 1
    groups: int = 32
    mid_attention: bool = False
    padding_mode: PaddingMode = "zeros"
    embed_dim: int = 32
    codebook_size: int = 512
    quantizer: QuantizerKind = "vq"
    beta: float = 0.25
    decay: float = 0.99
    eps: float = 1e-5
    dead_after: int = 100
    kl_weight: float = 5e-4

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_channels", tuple(self.block_channels))
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be at least 2, got {self.codebook_size}")
        for name in ("beta", "decay", "eps", "kl_weight"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        # Building the encoder's and decoder's config checks their widths, groups and depth.
        _ = self.vae_config

    @property
    def vae_config(self) -> VAEConfig:
        """The encoder's and decoder's sizes, with the D-channel latent between them."""
        return VAEConfig(
            in_channels=self.in_channels,
            latent_channels=self.embed_dim,
            block_channels=self.block_channels,
            layers_per_block=self.layers_per_block,
            groups=self.groups,
            mid_attention=self.mid_attention,
            padding_mode=self.padding_mode,
        )

    @property
    def downsampling_factor(self) -> int:
        """f: how many pixels along each side one token stands for."""
        return 2 ** (len(self.block_channels) - 1)


def build_quantizer(config: TokenizerConfig) -> Quantizer:
    """The quantizer ``config.quantizer`` names, sized and weighted by ``config``."""
    if config.quantizer == "vq":
        return VectorQuantizer(
            codebook_size=config.codebook_size,
            dim=config.embed_dim,
            beta=config.beta,
            decay=config.decay,
            eps=config.eps,
            dead_after=config.dead_after,
        )
    if config.quantizer == "gumbel":
        return GumbelQuantizer(
            codebook_size=config.codebook_size, dim=config.embed_dim, kl_weight=config.kl_weight
        )
    raise ValueError(f"unknown quantizer {config.quantizer!r}; valid: {', '.join(QUANTIZERS)}")


class ImageTokenizer(nn.Module):
    """x -> codes with :meth:`encode`, codes -> x with :meth:`decode_codes`; ``forward`` trains."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.vae_config, out_channels=config.embed_dim)
        self.quantizer = build_quantizer(config)
        self.decoder = Decoder(config.vae_config)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        """The training pass: x_tilde = G(z_q) (unclamped) and the quantizer's output."""
        self._check_image(x)
        quantized = self.quantizer(self.encoder(x))  # z_q (B, D, h, w)
        return self.decoder(quantized.z_q), quantized

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), H and W multiples of f -> codes (B, H/f, W/f) long."""
        self._check_image(x)
        return self.quantizer.codes(self.encoder(x))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) -> x (B, C, f h, f w) in [-1, 1]."""
        return self.decoder(self.quantizer.embed(codes)).clamp(-1, 1)

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """x -> its tokens -> their image: what the tokenizer keeps of ``x``."""
        return self.decode_codes(self.encode(x))

    def _check_image(self, x: torch.Tensor) -> None:
        check_image(x, channels=self.config.in_channels,
                    factor=self.config.downsampling_factor, what="this tokenizer")  # fmt: skip
