import pytest
import torch

from atelier.models.latent_space import LatentSpace


def test_scalar_space_is_stable_diffusions_scale_factor():
    z = torch.randn(2, 4, 3, 3)
    space = LatentSpace(0.18215)
    assert torch.equal(space.to_diffusion(z), z * 0.18215)
    assert torch.allclose(space.from_diffusion(space.to_diffusion(z)), z, atol=1e-6)


def test_per_channel_follows_diffusers_latents_mean_std_convention():
    # diffusers (SDXL / Playground v2.5): (z - latents_mean) * scaling_factor / latents_std.
    mean, std, scale = (0.5, -1.0, 0.0, 2.0), (1.0, 0.5, 2.0, 4.0), 0.5
    z = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    space = LatentSpace(scale, mean, std)
    m = torch.tensor(mean, dtype=torch.float64).view(1, 4, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, 4, 1, 1)
    assert torch.allclose(space.to_diffusion(z), (z - m) * scale / s)
    assert torch.allclose(space.from_diffusion(space.to_diffusion(z)), z)


def test_measure_normalises_every_channel():
    g = torch.Generator().manual_seed(0)
    channel_mean = torch.tensor([0.3, -1.1, 0.7, 0.0]).view(1, 4, 1, 1)
    channel_std = torch.tensor([0.3, 0.5, 0.5, 1.4]).view(1, 4, 1, 1)
    z = torch.randn(64, 4, 8, 8, generator=g) * channel_std + channel_mean
    space = LatentSpace.measure(z)
    out = space.to_diffusion(z)
    assert out.mean((0, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(out.std((0, 2, 3)), torch.ones(4), atol=1e-5)
    assert space.std[3] == pytest.approx(1.4, rel=0.05)


def test_bad_latent_spaces_are_named():
    with pytest.raises(ValueError, match="together"):
        LatentSpace(1.0, (0.0,), None)
    with pytest.raises(ValueError, match="positive"):
        LatentSpace(1.0, (0.0, 0.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="positive number"):
        LatentSpace(0.0)
    with pytest.raises(ValueError, match=r"\(B, 2, h, w\)"):
        LatentSpace(1.0, (0.0, 0.0), (1.0, 1.0)).to_diffusion(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="no spread"):
        LatentSpace.measure(torch.ones(4, 2, 3, 3))


def test_matches_allows_rounding_but_not_another_space():
    torch.manual_seed(0)
    z = torch.randn(64, 4, 8, 8) * torch.tensor([1.0, 2.0, 0.5, 3.0]).view(1, 4, 1, 1)
    here = LatentSpace.measure(z)
    # The same latents as another CPU's convolutions might round them.
    there = LatentSpace.measure(z + 1e-6 * torch.randn_like(z))
    assert here != there and here.matches(there) and there.matches(here)
    assert not here.matches(LatentSpace.measure(z * 1.1))  # another autoencoder's spread
    assert not here.matches(LatentSpace.measure(z + 0.1))
    assert not here.matches(LatentSpace(1.0)) and LatentSpace(0.5).matches(LatentSpace(0.5))
    assert not LatentSpace(0.5).matches(LatentSpace(0.18215))
