"""Noise-aware classifier guidance on the analytic test bed: with the mixture's exact classifier
p(y | x_t, t), guidance at scale 1 turns the unconditional score into the class-conditional one,
so guided samples come from the chosen class's components; and the heads form of the wrapper."""

import math

import torch

from atelier.diffusion.analytic import ring_mixture
from atelier.diffusion.guidance import class_log_likelihood, classifier_guidance
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import get_sampler
from atelier.diffusion.schedules import alphas_cumprod, make_betas, sigmas_from_alphas_cumprod

ABAR = alphas_cumprod(make_betas("scaled_linear", 1000))
SIGMAS = sigmas_from_alphas_cumprod(ABAR)


def exact_classifier(mixture):
    """logits (B, 2) = log p(y | x_t, t) up to a constant, from the noisy mixture at sigma(t)."""
    labels = mixture.labels

    def classify(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = SIGMAS[t.round().long()].to(x_t.dtype)[:, None, None]  # (B, 1, 1)
        x = (x_t * (1 + sigma[..., 0] ** 2).sqrt())[:, None]  # the VE latent (B, 1, D)
        var = mixture.stds[None, :, None] ** 2 + sigma**2  # (B, K, 1)
        log_n = (-0.5 * ((x - mixture.means[None]) ** 2).sum(-1) / var[..., 0]
                 - 0.5 * mixture.dim * (2 * math.pi * var[..., 0]).log())  # fmt: skip
        joint = mixture.weights.log()[None] + log_n  # (B, K)
        return torch.stack([joint[:, labels == k].logsumexp(-1) for k in (0, 1)], -1)

    return classify


def nearest_label(mixture, x):
    return mixture.labels[torch.cdist(x, mixture.means).argmin(1)]


def test_guidance_by_the_exact_noise_aware_classifier_samples_its_class():
    mixture = ring_mixture(2)
    plan = make_plan(ABAR, 30, spacing="trailing")  # integer timesteps: sigma(t) from the table
    n = 2000
    torch.manual_seed(4)
    x = torch.randn(n, 2, dtype=torch.float64) * plan.init_noise_sigma

    def denoiser(x, sigma, t):
        return mixture.denoise(x, sigma)

    euler = get_sampler("euler")
    plain = euler(denoiser, x, plan)
    y = torch.zeros(n, dtype=torch.long)
    guided = euler(classifier_guidance(denoiser, exact_classifier(mixture), y, 1.0), x, plan)
    share_plain = float((nearest_label(mixture, plain) == 0).double().mean())
    share_guided = float((nearest_label(mixture, guided) == 0).double().mean())
    assert 0.4 < share_plain < 0.6  # half the components are class 0
    assert share_guided > 0.97, share_guided
    # on the class's own components, not merely nearer them: within 4 stds of a class-0 mean
    d = torch.cdist(guided, mixture.means[mixture.labels == 0]).min(1).values
    assert float((d < 4 * mixture.stds[0]).double().mean()) > 0.95
    # the other class, from the same noise
    toward_one = euler(classifier_guidance(denoiser, exact_classifier(mixture), 1 - y, 1.0), x,
                       plan)  # fmt: skip
    assert float((nearest_label(mixture, toward_one) == 1).double().mean()) > 0.97


def test_heads_likelihood_sums_the_stated_heads():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    logits[:, 2, 3:] = -math.inf  # a narrower head, padded
    y = torch.tensor([[1, -1, 2], [4, 0, -1]])
    lp = logits.log_softmax(-1)
    expected = torch.stack([lp[0, 0, 1] + lp[0, 2, 2], lp[1, 0, 4] + lp[1, 1, 0]])
    torch.testing.assert_close(class_log_likelihood(logits, y), expected)
    logits.requires_grad_(True)
    class_log_likelihood(logits, y).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_targets_chosen_per_step_equal_the_same_fixed_targets():
    mixture = ring_mixture(2)
    classify = exact_classifier(mixture)
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sigma, t = torch.full((4,), float(SIGMAS[500])), torch.full((4,), 500.0)
    y = torch.tensor([0, 1, 1, 0])

    def denoiser(x, s, t):
        return mixture.denoise(x, s)

    fixed = classifier_guidance(denoiser, classify, y, 2.0)(x, sigma, t)
    seen = []

    def choose(logits):
        seen.append(logits.requires_grad)
        return y

    chosen = classifier_guidance(denoiser, classify, choose, 2.0)(x, sigma, t)
    assert torch.equal(fixed, chosen) and seen == [False]  # it sees detached logits
