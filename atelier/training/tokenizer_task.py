"""Training an image tokenizer as a task: reconstruction, the quantizer's loss, optionally a GAN.

Notation as in :mod:`atelier.models.tokenizer`: x an image, x_tilde = G(Q(E(x))) its
reconstruction. The tokenizer minimises (VQGAN, Esser et al., 2021, eq. 4 and 7)

    L = |x - x_tilde|_1 + w_2 |x - x_tilde|_2^2 + L_Q + lambda * L_G,

with per-element means, L_Q the quantizer's own term (VQ: beta times the commitment; Gumbel:
the KL to the uniform prior), and L_G the hinge generator loss against a patch discriminator,
switched on at ``adversarial_start`` with VQGAN's adaptive lambda (the ratio of the gradient
norms of the reconstruction and GAN losses at G's last layer). The loss functions are the KL
autoencoder's (:mod:`atelier.training.vae_loss`). One optimizer steps both networks from one
summed loss, each term reaching only its own side, as in :mod:`atelier.training.vae_task`.

In that sum the discriminator's hinge loss is scaled by ``discriminator_loss_scale``. The loop
clips the global gradient norm of all trained networks together, and a fresh discriminator's
gradient norm (about 30, measured at 64 px) would otherwise scale the tokenizer's step down
twenty-fold the moment the GAN switches on. AdamW normalises each parameter's step by its own
gradient scale, so the factor leaves the discriminator's updates as they were.

The Gumbel relaxation's temperature follows :func:`gumbel_temperature`, DALL-E's cosine anneal
from ``temperature_start`` to ``temperature_end`` over ``temperature_steps`` optimizer steps.
Logs: ``usage`` and ``perplexity`` of the batch's codes and ``usage_window`` over the last
``usage_window`` batches (a code rare enough to miss most batches still counts as used there).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.func import functional_call

from atelier.data.base import tensor_to_array
from atelier.models.discriminator import PatchDiscriminator
from atelier.models.quantizer import GumbelQuantizer, code_counts, usage
from atelier.models.tokenizer import ImageTokenizer
from atelier.training.task import Logs
from atelier.training.vae_loss import (
    adaptive_adversarial_weight,
    hinge_discriminator_loss,
    hinge_generator_loss,
    reconstruction_loss,
)


@dataclass(frozen=True)
class TokenizerLossConfig:
    """Weights and schedules of the tokenizer objective; ``adversarial_weight=0``: no GAN."""

    l2_weight: float = 0.0
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    # The adaptive lambda divides by a gradient norm that is near zero while Disc is untrained.
    max_adaptive_weight: float = 1e4
    discriminator_loss_scale: float = 0.01
    temperature_start: float = 1.0
    temperature_end: float = 1 / 16
    temperature_steps: int = 5000
    usage_window: int = 50

    def __post_init__(self) -> None:
        for name in ("l2_weight", "adversarial_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        positive = ("max_adaptive_weight", "discriminator_loss_scale", "temperature_start",
                    "temperature_end")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.adversarial_start < 0:
            raise ValueError(f"adversarial_start must be >= 0, got {self.adversarial_start}")
        for name in ("temperature_steps", "usage_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def adversarial_on(self, step: int) -> bool:
        """Whether the adversarial losses count at optimizer step ``step``."""
        return self.adversarial_weight > 0 and step >= self.adversarial_start


def gumbel_temperature(step: int, *, start: float, end: float, steps: int) -> float:
    """tau at optimizer step ``step``: a cosine from ``start`` at 0 to ``end`` at ``steps``, then
    ``end`` (DALL-E, Ramesh et al., 2021, section 2.1: 1 -> 1/16)."""
    progress = min(max(step, 0) / steps, 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


class TokenizerTask:
    """Train ``tokenizer`` (and ``discriminator`` when the loss config uses one) on images."""

    def __init__(
        self,
        tokenizer: ImageTokenizer,
        loss: TokenizerLossConfig,
        *,
        discriminator: PatchDiscriminator | None = None,
        sample_images: torch.Tensor | None = None,
    ) -> None:
        if loss.adversarial_weight > 0 and discriminator is None:
            raise ValueError("adversarial_weight > 0 needs a discriminator")
        self.tokenizer, self.loss_config, self.discriminator = tokenizer, loss, discriminator
        self.sample_images = sample_images
        self._window: deque[torch.Tensor] = deque(maxlen=loss.usage_window)

    def modules(self) -> dict[str, nn.Module]:
        trained: dict[str, nn.Module] = {"tokenizer": self.tokenizer}
        if self.discriminator is not None:
            trained["discriminator"] = self.discriminator
        return trained

    def loss(self, batch: tuple[torch.Tensor, list[str]], step: int) -> tuple[torch.Tensor, Logs]:
        x, _ = batch
        config = self.loss_config
        quantizer = self.tokenizer.quantizer
        logs: Logs = {}
        if isinstance(quantizer, GumbelQuantizer):
            quantizer.temperature = gumbel_temperature(
                step,
                start=config.temperature_start,
                end=config.temperature_end,
                steps=config.temperature_steps,
            )
            logs["tau"] = quantizer.temperature
        x_tilde, quantized = self.tokenizer(x)
        x_tilde = x_tilde.float()
        rec = reconstruction_loss(x, x_tilde, "l1")
        if config.l2_weight > 0:
            rec = rec + config.l2_weight * reconstruction_loss(x, x_tilde, "l2")
        total = rec + quantized.loss
        self._window.append(code_counts(quantized.codes, quantizer.codebook_size))
        logs |= {"rec": rec.item(), "q_loss": quantized.loss.item(), **quantized.stats,
                 "usage_window": usage(torch.stack(tuple(self._window)).sum(0))}  # fmt: skip
        if self.discriminator is not None and config.adversarial_on(step):
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            g_loss = hinge_generator_loss(functional_call(self.discriminator, frozen, (x_tilde,)))
            weight = config.adversarial_weight * adaptive_adversarial_weight(
                rec,
                g_loss,
                self.tokenizer.decoder.conv_out.weight,
                max_weight=config.max_adaptive_weight,
            )
            d_loss = hinge_discriminator_loss(
                self.discriminator(x), self.discriminator(x_tilde.detach())
            )
            total = total + weight * g_loss + config.discriminator_loss_scale * d_loss
            logs |= {"g_adv": g_loss.item(), "adv_weight": weight.item(), "d_loss": d_loss.item()}
        return total, logs

    def sample(self, step: int, out_dir: Path) -> None:
        """Originals above their round trips through the tokens, for the fixed sample images."""
        if self.sample_images is None:
            return
        x = self.sample_images.to(next(self.tokenizer.parameters()).device)
        x_tilde = self.tokenizer.round_trip(x)
        top = np.concatenate([tensor_to_array(i) for i in x], axis=1)
        bottom = np.concatenate([tensor_to_array(i) for i in x_tilde], axis=1)
        out_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([top, bottom])).save(out_dir / f"recon-{step:07d}.png")
