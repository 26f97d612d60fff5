"""unCLIP's prior network: its inputs, what it ignores, its x_0 loss on a known case, and
classifier-free guidance wrapped around it."""

import pytest
import torch

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.guidance import classifier_free_guidance
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorConfig, PriorTransformer
from atelier.text.encoder import TextEmbedding
from atelier.training.unclip_tasks import PriorTask

CONFIG = PriorConfig(embed_dim=8, text_dim=16, text_length=6, width=32, layers=2, heads=2)


def caption(b: int, seed: int = 0, lengths=(6, 3)) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, 6, dtype=torch.bool)
    for i in range(b):
        mask[i, : lengths[i % len(lengths)]] = True
    states = torch.randn(b, 6, 16, generator=g) * mask[..., None]
    return TextEmbedding(states, mask, torch.nn.functional.normalize(torch.randn(b, 8, generator=g),
                                                                     dim=-1))  # fmt: skip


def test_the_prior_reads_the_caption_and_ignores_its_padding():
    torch.manual_seed(0)
    prior = PriorTransformer(CONFIG).eval()
    x, t, text = torch.randn(2, 8), torch.tensor([5.0, 900.0]), caption(2)
    out = prior(x, t, text)
    assert out.shape == (2, 8)
    noisy = TextEmbedding(text.states + 7.0 * ~text.mask[..., None], text.mask, text.pooled)
    torch.testing.assert_close(prior(x, t, noisy), out, rtol=0, atol=1e-6)
    other = caption(2, seed=1)
    assert not torch.allclose(prior(x, t, other), out)  # the caption matters
    assert not torch.allclose(prior(x, t.flip(0), text), out)  # and the timestep
    with pytest.raises(ValueError, match=r"x must be \(B, 8\)"):
        prior(torch.randn(2, 7), t, text)
    with pytest.raises(ValueError, match="text embeddings"):
        prior(x, t, TextEmbedding(text.states, text.mask, torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="divisible"):
        PriorConfig(width=30, heads=4)


class Zero(torch.nn.Module):
    """A prior that always answers x_0 = 0, the normalised embeddings' mean."""

    def forward(self, x, t, caption):
        return torch.zeros_like(x)


def test_the_x0_loss_of_a_known_answer():
    # Whatever t and the noise, answering 0 costs the mean square of the normalised embedding.
    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    space = LatentSpace(mean=(0.1,) * 8, std=(0.5,) * 8)
    lookup = lambda prompts: caption(len(prompts))  # noqa: E731
    task = PriorTask(prior=Zero(), diffusion=DiffusionConfig("cosine", prediction_type="sample"),
                     space=space, captions=lookup)  # fmt: skip
    loss, logs = task.loss(((torch.zeros(4, 3, 8, 8), z), ["a"] * 4), step=0)
    expected = ((z - 0.1) / 0.5).square().mean()
    torch.testing.assert_close(loss, expected)
    assert logs["loss"].shape == (4,) and logs["t"].shape == (4,)
    with pytest.raises(ValueError, match="prediction type must be 'sample'"):
        PriorTask(prior=Zero(), diffusion=DiffusionConfig(), space=space, captions=lookup)


def test_classifier_free_guidance_wraps_the_prior():
    torch.manual_seed(0)
    prior = PriorTransformer(CONFIG).eval()
    x, t = torch.randn(2, 8), torch.tensor([100.0, 400.0])
    cond, uncond = caption(2), caption(2, seed=3, lengths=(1,))
    with torch.no_grad():
        c, u = prior(x, t, cond), prior(x, t, uncond)
        guided = classifier_free_guidance(prior, cond, uncond, 4.0)(x, t)
        alone = classifier_free_guidance(prior, cond, uncond, 1.0)(x, t)
    torch.testing.assert_close(guided, u + 4.0 * (c - u), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, c, rtol=0, atol=0)
