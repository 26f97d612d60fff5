"""The text-conditional GAN objective as plain functions (DF-GAN; Tao et al., 2022).

Notation: x a real image and s its sentence vector, s' a sentence that does not match x
(another image's caption, or a hard negative: x's own caption with one fact changed),
x_hat = G(z, s) a generated image, D(x, s) the discriminator's logit that x is real and
matches s. With hinge losses (Lim & Ye, 2017):

    L_D = E relu(1 - D(x, s)) + 1/2 [E relu(1 + D(x_hat, s)) + E relu(1 + D(x, s'))] + L_GP
    L_G = -E D(x_hat, s)

The matching-aware gradient penalty (MA-GP, DF-GAN section 3.3) flattens D around the real,
matching pairs along both of its inputs:

    L_MA-GP = k E (||grad_x D(x, s)||^2 + ||grad_s D(x, s)||^2)^(p / 2),   k = 2, p = 6;

R1 (Mescheder et al., 2018) around the real images only: L_R1 = gamma / 2 E ||grad_x D(x, s)||^2.

The penalties take the logits a training step has already computed and the inputs they came
from (which must require grad), so D(x, s) runs once. They differentiate the *sum* of the
logits, which gives every sample its own gradient only when D mixes no samples (no batch norm,
no minibatch statistics): the discriminators here do not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_real(logits: torch.Tensor) -> torch.Tensor:
    """E relu(1 - D): what D pays for a real, matching pair it scores below 1."""
    return F.relu(1.0 - logits).mean()


def hinge_fake(logits: torch.Tensor) -> torch.Tensor:
    """E relu(1 + D): what D pays for a generated or mismatched pair it scores above -1."""
    return F.relu(1.0 + logits).mean()


def generator_loss(logits: torch.Tensor) -> torch.Tensor:
    """L_G = -E D(x_hat, s): G is rewarded for pairs D scores as real and matching."""
    return -logits.mean()


def _squared_norms(logits: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per sample, ||grad D||^2 summed over ``inputs``, kept in the graph (B,)."""
    grads = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return sum(g.flatten(1).square().sum(1) for g in grads)  # type: ignore[return-value]


def matching_aware_gradient_penalty(
    logits: torch.Tensor,
    images: torch.Tensor,
    sentences: torch.Tensor,
    *,
    k: float = 2.0,
    p: float = 6.0,
) -> torch.Tensor:
    """MA-GP (DF-GAN): k E (||grad_x D||^2 + ||grad_s D||^2)^(p/2) at real, matching pairs;
    ``logits`` (B,) = D(images, sentences)."""
    # The squared norm raised to p/2, not the norm to p: the norm's square root has an infinite
    # derivative at 0, which turns a sample with a zero gradient into NaN in the backward pass.
    return k * _squared_norms(logits, (images, sentences)).pow(p / 2).mean()


def r1_penalty(logits: torch.Tensor, images: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """R1: gamma / 2 E ||grad_x D(x, s)||^2 at real images; ``logits`` (B,) = D(images, s)."""
    return gamma / 2 * _squared_norms(logits, (images,)).mean()
