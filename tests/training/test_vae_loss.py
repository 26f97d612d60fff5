"""The KL autoencoder's objective: each term by hand, the adversarial schedule and weights,
validation, and the latent scale factor."""

import math

import pytest
import torch

from atelier.models.vae import AutoencoderKL, DiagonalGaussian, VAEConfig
from atelier.training.vae_loss import (
    VAELossConfig,
    adaptive_adversarial_weight,
    discriminator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    kl_loss,
    measure_scale_factor,
    reconstruction_loss,
    vae_loss,
)


def posterior(mean: float, logvar: float, shape=(2, 4, 2, 2)) -> DiagonalGaussian:
    return DiagonalGaussian(torch.cat([torch.full(shape, mean), torch.full(shape, logvar)], 1))


def test_reconstruction_losses():
    x = torch.zeros(2, 3, 4, 4)
    x_tilde = torch.full_like(x, 0.5)
    x_tilde[0] = -2.0
    assert reconstruction_loss(x, x_tilde, "l1").item() == pytest.approx((2.0 + 0.5) / 2)
    assert reconstruction_loss(x, x_tilde, "l2").item() == pytest.approx((4.0 + 0.25) / 2)
    with pytest.raises(ValueError, match="l1"):
        reconstruction_loss(x, x_tilde, "l3")
    with pytest.raises(ValueError, match="shape"):
        reconstruction_loss(x, x_tilde[:, :2])


def test_kl_loss_per_image():
    assert kl_loss(posterior(0.0, 0.0)).item() == 0.0
    # 0.5 (mu^2 + e^s - 1 - s) per element, 16 latent elements per image.
    expected = 16 * 0.5 * (1.0 + math.exp(1.0) - 1.0 - 1.0)
    assert kl_loss(posterior(1.0, 1.0)).item() == pytest.approx(expected)


def test_hinge_losses():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = (0, 0.5, 2); relu(1 + fake) = (0, 1, 2).
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 3 / 3))
    assert hinge_generator_loss(fake).item() == pytest.approx(1.0 / 3)


def test_vae_loss_without_adversary_scales_kl_per_element():
    x = torch.zeros(2, 3, 4, 4)
    x_tilde = torch.full_like(x, 0.1, requires_grad=True)
    config = VAELossConfig(reconstruction="l2", kl_weight=0.5)
    q = posterior(1.0, 0.0)
    loss = vae_loss(config, x, x_tilde, q, step=0)
    assert loss.reconstruction.item() == pytest.approx(0.01)
    assert loss.kl.item() == pytest.approx(8.0)
    assert loss.total.item() == pytest.approx(0.01 + 0.5 * 8.0 / 48)
    assert loss.adversarial.item() == 0.0 and loss.adversarial_weight.item() == 0.0
    assert loss.total.requires_grad and not loss.reconstruction.requires_grad


def tiny_decoder_step(config: VAELossConfig, step: int):
    """x_tilde = w * h through one conv; a fixed linear 'discriminator' over x_tilde."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 1)
    h = torch.randn(2, 2, 4, 4)
    x = torch.randn(2, 3, 4, 4)
    x_tilde = conv(h)
    logits_fake = (x_tilde * torch.linspace(-1, 1, 16).view(1, 1, 4, 4)).sum(1, keepdim=True)
    loss = vae_loss(
        config,
        x,
        x_tilde,
        posterior(0.0, 0.0),
        step=step,
        logits_fake=logits_fake,
        last_layer=conv.weight,
    )
    return loss, x, x_tilde, logits_fake, conv


def test_adversarial_start_step():
    config = VAELossConfig(
        adversarial_weight=0.5, adversarial_weighting="fixed", adversarial_start=3
    )
    before, *_ = tiny_decoder_step(config, step=2)
    assert before.adversarial.item() == 0.0
    assert before.total.item() == pytest.approx(before.reconstruction.item())
    after, _, _, logits_fake, _ = tiny_decoder_step(config, step=3)
    assert after.adversarial.item() == pytest.approx(-logits_fake.mean().item())
    assert after.adversarial_weight.item() == 0.5
    assert after.total.item() == pytest.approx(
        after.reconstruction.item() + 0.5 * after.adversarial.item()
    )
    # Before the start the discriminator needs no logits at all.
    x = torch.zeros(1, 3, 4, 4)
    assert vae_loss(config, x, x, posterior(0.0, 0.0, (1, 4, 1, 1)), step=0).total.item() == 0.0
    with pytest.raises(ValueError, match="logits_fake"):
        vae_loss(config, x, x, posterior(0.0, 0.0, (1, 4, 1, 1)), step=3)


def test_adaptive_weight_matches_gradient_ratio():
    config = VAELossConfig(adversarial_weight=0.5, adversarial_weighting="adaptive")
    loss, x, x_tilde, logits_fake, conv = tiny_decoder_step(config, step=0)
    rec = reconstruction_loss(x, x_tilde)
    (g_rec,) = torch.autograd.grad(rec, conv.weight, retain_graph=True)
    (g_adv,) = torch.autograd.grad(-logits_fake.mean(), conv.weight, retain_graph=True)
    expected = 0.5 * g_rec.norm() / (g_adv.norm() + 1e-4)
    assert loss.adversarial_weight.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not loss.adversarial_weight.requires_grad
    # The graph survives for the backward pass the caller makes next.
    loss.total.backward()
    assert conv.weight.grad is not None

    with pytest.raises(ValueError, match="last_layer"):
        vae_loss(config, x, x_tilde, posterior(0.0, 0.0), step=0, logits_fake=logits_fake)
    with pytest.raises(ValueError, match="graphs"):
        adaptive_adversarial_weight(rec.detach(), logits_fake.mean(), conv.weight)


def test_adaptive_weight_is_clamped():
    w = torch.ones(3, requires_grad=True)
    rec = (w * 1e3).sum()
    adversarial = (w * 0.0).sum()  # zero gradient: the weight would be 1e3 * sqrt(3) / 1e-4
    assert adaptive_adversarial_weight(rec, adversarial, w, max_weight=7.0).item() == 7.0


def test_discriminator_loss_follows_start_step():
    config = VAELossConfig(adversarial_weight=1.0, adversarial_start=5)
    real = torch.tensor([0.0, 2.0], requires_grad=True)
    fake = torch.tensor([0.5, -3.0])
    assert discriminator_loss(config, real, fake, step=4).item() == 0.0
    expected = hinge_discriminator_loss(real, fake).item()
    assert discriminator_loss(config, real, fake, step=5).item() == pytest.approx(expected)
    discriminator_loss(config, real, fake, step=4).backward()
    assert torch.equal(real.grad, torch.zeros(2))


@pytest.mark.parametrize(
    "changes",
    [
        {"reconstruction": "huber"},
        {"adversarial_weighting": "learned"},
        {"kl_weight": -1.0},
        {"adversarial_weight": float("nan")},
        {"adversarial_start": -1},
        {"max_adaptive_weight": 0.0},
    ],
)
def test_bad_config_raises(changes):
    with pytest.raises(ValueError):
        VAELossConfig(**changes)


def test_measure_scale_factor_is_inverse_latent_std():
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(block_channels=(8, 8), groups=4))
    x = torch.randn(5, 3, 8, 8)
    # Small batches exercise the accumulation across batches.
    scale = measure_scale_factor(vae, x, batch_size=2, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        z = torch.cat([vae.encode(x[i : i + 2]).sample(generator) for i in range(0, 5, 2)])
    assert scale == pytest.approx(1.0 / z.double().std().item(), rel=1e-9)
    with pytest.raises(ValueError, match="non-empty"):
        measure_scale_factor(vae, x[:0])
