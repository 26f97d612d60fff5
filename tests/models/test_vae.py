"""KL autoencoder: shapes at f = 4 and 8, parity with diffusers AutoencoderKL both ways,
validation, the posterior's KL, an overfit run on shapes-world images, the PatchGAN's shape."""

from dataclasses import replace

import pytest
import torch

from atelier.data.shapes import ShapesDataset
from atelier.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from atelier.models.vae import AutoencoderKL, DiagonalGaussian, VAEConfig
from atelier.models.vae_diffusers import (
    vae_config_to_diffusers,
    vae_state_dict_from_diffusers,
    vae_state_dict_to_diffusers,
)
from atelier.training.vae_loss import VAELossConfig, reconstruction_loss, vae_loss
from tests.numerics import assert_close_to

# Parity bound as a fraction of the reference's largest value (see tests/numerics.py); the
# measured gap is up to 1.2e-6 of it, and grows with the thread count.
REL = 1e-5
TINY = VAEConfig(block_channels=(8, 16), layers_per_block=1, groups=4)  # f = 2
# Exercises the other options: three levels, two resnets per level, no mid attention, 3 latents.
VARIANT = VAEConfig(
    latent_channels=3, block_channels=(8, 16, 16), layers_per_block=2, groups=4, mid_attention=False
)


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its init (zeros, ones) so no mapping error can hide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))


def images(batch: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("blocks", "factor"), [((8, 8, 16), 4), ((8, 8, 16, 16), 8)], ids=["f4", "f8"]
)
def test_shapes(blocks, factor):
    config = VAEConfig(block_channels=blocks, groups=4, latent_channels=4)
    assert config.downsampling_factor == factor
    vae = AutoencoderKL(config)
    x = images(size=32)
    with torch.no_grad():
        posterior = vae.encode(x)
        z = posterior.sample(torch.Generator().manual_seed(0))
        x_tilde = vae.decode(z)
        forward_x_tilde, forward_posterior = vae(x)
    latent_shape = (2, 4, 32 // factor, 32 // factor)
    assert posterior.mean.shape == posterior.logvar.shape == z.shape == latent_shape
    assert x_tilde.shape == forward_x_tilde.shape == x.shape
    assert forward_posterior.mean.shape == latent_shape
    assert torch.isfinite(x_tilde).all()


def test_non_square_images():
    vae = AutoencoderKL(TINY)
    with torch.no_grad():
        assert vae.decode(vae.encode(torch.zeros(1, 3, 8, 12)).mode()).shape == (1, 3, 8, 12)


def diffusers_moments_and_decode(reference, x, z):
    latent_dist = reference.encode(x).latent_dist
    return latent_dist.mean, latent_dist.logvar, reference.decode(z).sample


@pytest.mark.parametrize("config", [TINY, VARIANT], ids=["tiny", "variant"])
def test_parity_from_diffusers(config: VAEConfig):
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL

    torch.manual_seed(1)
    reference = DiffusersAutoencoderKL(**vae_config_to_diffusers(config)).eval()
    perturb(reference, seed=2)
    ours = AutoencoderKL(config).eval()
    ours.load_state_dict(vae_state_dict_from_diffusers(reference.state_dict()))

    x = images()
    side = 16 // config.downsampling_factor
    z = torch.randn(
        2, config.latent_channels, side, side, generator=torch.Generator().manual_seed(6)
    )
    with torch.no_grad():
        mean, logvar, decoded = diffusers_moments_and_decode(reference, x, z)
        posterior = ours.encode(x)
        got = ours.decode(z)
    assert_close_to(posterior.mean, mean, rel=REL)
    assert_close_to(posterior.logvar, logvar, rel=REL)
    assert_close_to(got, decoded, rel=REL)


@pytest.mark.parametrize("config", [TINY, VARIANT], ids=["tiny", "variant"])
def test_parity_to_diffusers(config: VAEConfig):
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL

    torch.manual_seed(3)
    ours = AutoencoderKL(config).eval()
    perturb(ours, seed=4)
    reference = DiffusersAutoencoderKL(**vae_config_to_diffusers(config)).eval()
    reference.load_state_dict(vae_state_dict_to_diffusers(ours.state_dict()))

    x = images(seed=5)
    with torch.no_grad():
        posterior = ours.encode(x)
        z = posterior.mode()
        mean, logvar, decoded = diffusers_moments_and_decode(reference, x, z)
        got = ours.decode(z)
    assert_close_to(posterior.mean, mean, rel=REL)
    assert_close_to(posterior.logvar, logvar, rel=REL)
    assert_close_to(got, decoded, rel=REL)


def test_state_dict_round_trip_is_identity():
    sd = AutoencoderKL(TINY).state_dict()
    back = vae_state_dict_from_diffusers(vae_state_dict_to_diffusers(sd))
    assert list(back) == list(sd)


def test_bad_size_names_valid_sizes():
    vae = AutoencoderKL(replace(TINY, block_channels=(8, 8, 16)))  # f = 4
    with pytest.raises(ValueError, match=r"multiples of 4 \(nearest: 28, 32\)"):
        vae.encode(images(size=30))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        vae.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 4, h, w\)"):
        vae.decode(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize(
    "changes",
    [
        {"block_channels": ()},
        {"block_channels": (8, 10)},  # 10 not divisible by 4 groups
        {"layers_per_block": 0},
        {"latent_channels": 0},
        {"groups": 0},
    ],
)
def test_bad_config_raises(changes):
    with pytest.raises(ValueError):
        replace(TINY, **changes)


def test_kl_of_standard_normal_posterior_is_zero():
    posterior = DiagonalGaussian(torch.zeros(3, 8, 2, 2))  # mean 0, logvar 0
    assert torch.equal(posterior.kl(), torch.zeros(3))
    shifted = DiagonalGaussian(torch.cat([torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)], 1))
    assert shifted.kl().item() == pytest.approx(0.5 * 16)  # 0.5 * mean^2 per element


def test_posterior_sample_and_clamp():
    moments = torch.cat([torch.full((1, 2, 3, 3), 2.0), torch.full((1, 2, 3, 3), -100.0)], 1)
    posterior = DiagonalGaussian(moments)
    assert posterior.logvar.min().item() == -30.0  # clamped like Stable Diffusion
    assert torch.allclose(posterior.sample(), posterior.mode(), atol=1e-6)
    wide = DiagonalGaussian(torch.zeros(1, 8, 16, 16))
    a = wide.sample(torch.Generator().manual_seed(0))
    assert torch.equal(a, wide.sample(torch.Generator().manual_seed(0)))
    assert 0.8 < a.std().item() < 1.2


def test_overfits_four_shapes_images():
    """A tiny f = 4 VAE drives its L1 reconstruction error on 4 fixed images down over 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = ShapesDataset(4, resolution=32)
        x = torch.stack([dataset[i][0] for i in range(4)])  # (4, 3, 32, 32)
        torch.manual_seed(0)
        vae = AutoencoderKL(VAEConfig(block_channels=(16, 32, 32), groups=8, mid_attention=False))
        config = VAELossConfig(reconstruction="l1")
        optimizer = torch.optim.AdamW(vae.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)

        def deterministic_error() -> float:
            with torch.no_grad():
                return reconstruction_loss(x, vae.decode(vae.encode(x).mode())).item()

        before = deterministic_error()
        for step in range(200):
            x_tilde, posterior = vae(x, generator=generator)
            loss = vae_loss(config, x, x_tilde, posterior, step=step)
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()
        after = deterministic_error()
    finally:
        torch.set_num_threads(threads)
    assert after * 10 <= before, (before, after)


def test_patch_discriminator_shape_and_validation():
    for norm in ("batch", "group"):
        disc = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=3, norm=norm))
        assert disc(images(size=64)).shape == (2, 1, 6, 6)  # 64 / 2^3 - 2
    small = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=2))
    assert small(images(size=12)).shape == (2, 1, 1, 1)
    with pytest.raises(ValueError, match=">= 12"):
        small(images(size=11))
    with pytest.raises(ValueError, match="norm"):
        DiscriminatorConfig(norm="instance")
    with pytest.raises(ValueError, match="layers"):
        DiscriminatorConfig(layers=0)
