"""Training the KL autoencoder as a task: reconstruction + KL, optionally a patch-GAN.

With the adversarial term on, one optimizer steps both networks from one summed loss, each term
reaching only its own side: the generator term reads the discriminator through detached weights
(``torch.func.functional_call``) and the discriminator term reads a detached reconstruction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.func import functional_call

from atelier.data.base import tensor_to_array
from atelier.models.discriminator import PatchDiscriminator
from atelier.models.vae import AutoencoderKL
from atelier.training.task import Logs
from atelier.training.vae_loss import VAELossConfig, hinge_discriminator_loss, vae_loss


class VAETask:
    """Train ``vae`` (and ``discriminator`` when the loss config uses one) on images."""

    def __init__(
        self,
        vae: AutoencoderKL,
        loss: VAELossConfig,
        *,
        discriminator: PatchDiscriminator | None = None,
        sample_images: torch.Tensor | None = None,
    ) -> None:
        if loss.adversarial_weight > 0 and discriminator is None:
            raise ValueError("adversarial_weight > 0 needs a discriminator")
        self.vae, self.loss_config, self.discriminator = vae, loss, discriminator
        self.sample_images = sample_images

    def modules(self) -> dict[str, nn.Module]:
        trained: dict[str, nn.Module] = {"vae": self.vae}
        if self.discriminator is not None:
            trained["discriminator"] = self.discriminator
        return trained

    def loss(self, batch: tuple[torch.Tensor, list[str]], step: int) -> tuple[torch.Tensor, Logs]:
        x, _ = batch
        posterior = self.vae.encode(x)
        x_tilde = self.vae.decode(posterior.sample())
        adversarial = self.discriminator is not None and self.loss_config.adversarial_on(step)
        logits_fake = None
        if adversarial:
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            logits_fake = functional_call(self.discriminator, frozen, (x_tilde,))
        out = vae_loss(
            self.loss_config,
            x,
            x_tilde,
            posterior,
            step=step,
            logits_fake=logits_fake,
            last_layer=self.vae.decoder.conv_out.weight,
        )
        total = out.total
        logs: Logs = {"rec": float(out.reconstruction), "kl": float(out.kl)}
        if adversarial:
            d_loss = hinge_discriminator_loss(
                self.discriminator(x), self.discriminator(x_tilde.detach())
            )
            total = total + d_loss
            logs |= {"d_loss": float(d_loss), "g_adv": float(out.adversarial)}
        return total, logs

    def sample(self, step: int, out_dir: Path) -> None:
        """Originals above reconstructions, for the fixed sample images."""
        if self.sample_images is None:
            return
        x = self.sample_images.to(next(self.vae.parameters()).device)
        x_tilde = self.vae.decode(self.vae.encode(x).mode()).clamp(-1, 1)
        top = np.concatenate([tensor_to_array(i) for i in x], axis=1)
        bottom = np.concatenate([tensor_to_array(i) for i in x_tilde], axis=1)
        out_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([top, bottom])).save(out_dir / f"recon-{step:07d}.png")
