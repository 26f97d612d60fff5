"""The KL autoencoder's objective (Rombach et al., 2022; Esser et al., 2021) as pure functions.

Notation: x (B, C, H, W) an image, x_tilde = D(z) its reconstruction with z ~ q(z | x), D the
decoder, Disc a patch discriminator returning logits. The autoencoder minimises

    L = L_rec(x, x_tilde) + w_KL * KL(q(z | x) || N(0, I)) / (C H W) + lambda * L_G,

with L_rec the per-element L1 or L2 error and L_G = -mean Disc(x_tilde) the hinge generator loss.
The KL term is divided by the number of image elements because L_rec is a per-element mean while
the paper's loss sums both over the image; so ``kl_weight`` means what it does there (1e-6 for
the released autoencoders). lambda is either fixed or adaptive: ``adversarial_weight`` times
||grad L_rec|| / ||grad L_G|| at D's last layer, which keeps the adversarial gradient at a set
fraction of the reconstruction gradient whatever their raw scales. Both adversarial losses are
switched off before ``adversarial_start``, so the discriminator first meets reasonable
reconstructions. The discriminator minimises the hinge loss
0.5 * (mean relu(1 - Disc(x)) + mean relu(1 + Disc(x_tilde))).

:func:`measure_scale_factor` gives the latent scale the diffusion model should see (section 4.3.2
of the paper: z is divided by its standard deviation over the data, so it starts near unit
variance like the noise it is mixed with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from atelier.models.vae import AutoencoderKL, DiagonalGaussian

Reconstruction = Literal["l1", "l2"]
AdversarialWeighting = Literal["adaptive", "fixed"]
RECONSTRUCTIONS: tuple[str, ...] = get_args(Reconstruction)
ADVERSARIAL_WEIGHTINGS: tuple[str, ...] = get_args(AdversarialWeighting)


@dataclass(frozen=True)
class VAELossConfig:
    """Weights of the autoencoder objective; ``adversarial_weight=0`` trains without a GAN."""

    reconstruction: Reconstruction = "l1"
    kl_weight: float = 1e-6
    adversarial_weight: float = 0.0
    adversarial_weighting: AdversarialWeighting = "adaptive"
    adversarial_start: int = 0
    # The adaptive lambda divides by a gradient norm that is near zero while Disc is untrained.
    max_adaptive_weight: float = 1e4

    def __post_init__(self) -> None:
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(
                f"reconstruction must be one of {RECONSTRUCTIONS}, got {self.reconstruction!r}"
            )
        if self.adversarial_weighting not in ADVERSARIAL_WEIGHTINGS:
            raise ValueError(
                f"adversarial_weighting must be one of {ADVERSARIAL_WEIGHTINGS}, "
                f"got {self.adversarial_weighting!r}"
            )
        for name in ("kl_weight", "adversarial_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.max_adaptive_weight) and self.max_adaptive_weight > 0):
            raise ValueError(
                f"max_adaptive_weight must be a positive number, got {self.max_adaptive_weight!r}"
            )
        if self.adversarial_start < 0:
            raise ValueError(f"adversarial_start must be >= 0, got {self.adversarial_start}")

    def adversarial_on(self, step: int) -> bool:
        """Whether the adversarial losses count at optimizer step ``step``."""
        return self.adversarial_weight > 0 and step >= self.adversarial_start


@dataclass(frozen=True)
class VAELoss:
    """The autoencoder's loss and its terms; only ``total`` carries gradients.

    ``adversarial`` is L_G and ``adversarial_weight`` the lambda applied to it (both 0 while the
    adversarial loss is off).
    """

    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    adversarial: torch.Tensor
    adversarial_weight: torch.Tensor


def reconstruction_loss(
    x: torch.Tensor, x_tilde: torch.Tensor, kind: Reconstruction = "l1"
) -> torch.Tensor:
    """Mean per-element L1 or L2 (squared) error between ``x`` and ``x_tilde``, a scalar."""
    if x.shape != x_tilde.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_tilde {tuple(x_tilde.shape)} differ in shape")
    if kind == "l1":
        return F.l1_loss(x_tilde, x)
    if kind == "l2":
        return F.mse_loss(x_tilde, x)
    raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")


def kl_loss(posterior: DiagonalGaussian) -> torch.Tensor:
    """KL(q(z | x) || N(0, I)) in nats per image, averaged over the batch: a scalar."""
    return posterior.kl().mean()


def hinge_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """L_G = -mean Disc(x_tilde): the decoder is rewarded for patches Disc scores as real."""
    return -logits_fake.mean()


def hinge_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 (mean relu(1 - Disc(x)) + mean relu(1 + Disc(x_tilde))) (Lim & Ye, 2017)."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_adversarial_weight(
    reconstruction: torch.Tensor,
    adversarial: torch.Tensor,
    last_layer: torch.Tensor,
    *,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """||grad L_rec|| / (||grad L_G|| + 1e-4) at ``last_layer`` (Esser et al., 2021), detached.

    Both losses must still have their graphs (they are kept for the later backward pass).
    """
    if not (reconstruction.requires_grad and adversarial.requires_grad):
        raise ValueError("the adaptive weight needs both losses with their autograd graphs")
    (grad_rec,) = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)
    (grad_adv,) = torch.autograd.grad(adversarial, last_layer, retain_graph=True)
    weight = grad_rec.norm() / (grad_adv.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def vae_loss(
    config: VAELossConfig,
    x: torch.Tensor,
    x_tilde: torch.Tensor,
    posterior: DiagonalGaussian,
    *,
    step: int,
    logits_fake: torch.Tensor | None = None,
    last_layer: torch.Tensor | None = None,
) -> VAELoss:
    """The autoencoder's loss at optimizer step ``step``.

    While the adversarial loss is on (see :meth:`VAELossConfig.adversarial_on`), pass
    ``logits_fake`` = Disc(x_tilde) with the graph through x_tilde, and for the adaptive weight
    ``last_layer``, the decoder's final conv weight (``vae.decoder.conv_out.weight``). Disc's
    own parameters should not be stepped by this loss.
    """
    rec = reconstruction_loss(x, x_tilde, config.reconstruction)
    kl = kl_loss(posterior)
    total = rec + config.kl_weight * kl / x[0].numel()
    adversarial = weight = torch.zeros((), device=x.device, dtype=rec.dtype)
    if config.adversarial_on(step):
        if logits_fake is None:
            raise ValueError(f"the adversarial loss is on at step {step}: pass logits_fake")
        adversarial = hinge_generator_loss(logits_fake)
        if config.adversarial_weighting == "fixed":
            weight = torch.tensor(config.adversarial_weight, device=x.device, dtype=rec.dtype)
        elif last_layer is None:
            raise ValueError("adaptive adversarial weighting needs last_layer")
        else:
            weight = config.adversarial_weight * adaptive_adversarial_weight(
                rec, adversarial, last_layer, max_weight=config.max_adaptive_weight
            )
        total = total + weight * adversarial
    return VAELoss(
        total=total,
        reconstruction=rec.detach(),
        kl=kl.detach(),
        adversarial=adversarial.detach(),
        adversarial_weight=weight,
    )


def discriminator_loss(
    config: VAELossConfig,
    logits_real: torch.Tensor,
    logits_fake: torch.Tensor,
    *,
    step: int,
) -> torch.Tensor:
    """The discriminator's hinge loss at step ``step``; Disc(x_tilde) should see a detached x_tilde.

    Zero (still a graph, so one backward pass works either way) while the adversarial loss is off.
    """
    loss = hinge_discriminator_loss(logits_real, logits_fake)
    return loss if config.adversarial_on(step) else loss * 0.0


@torch.no_grad()
def measure_scale_factor(
    vae: AutoencoderKL,
    images: torch.Tensor,
    *,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> float:
    """1 / std of latents z ~ q(z | x) over ``images`` (N, C, H, W): Stable Diffusion's scale.

    Latents are drawn from the posterior, not taken at its mean, because those draws are what the
    diffusion model trains on. The statistics accumulate in float64 over batches of
    ``batch_size``, so ``images`` can be larger than one forward pass allows.
    """
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty (N, C, H, W) batch, got {tuple(images.shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = next(vae.parameters()).device
    count, total, total_sq = 0, 0.0, 0.0
    for start in range(0, len(images), batch_size):
        z = vae.encode(images[start : start + batch_size].to(device)).sample(generator).double()
        count += z.numel()
        total += z.sum().item()
        total_sq += z.pow(2).sum().item()
    if count < 2:
        raise ValueError("need at least two latent values to measure a standard deviation")
    # Bessel-corrected, as torch.std is in the reference recipe.
    variance = (total_sq - total * total / count) / (count - 1)
    if not variance > 0:
        raise ValueError(f"latents have no spread (variance {variance}); is the VAE trained?")
    return 1.0 / math.sqrt(variance)
