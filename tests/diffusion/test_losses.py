"""Training losses: targets and Min-SNR weights against diffusers' recipe, x_0-space identities."""

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from atelier.diffusion.losses import (
    diffusion_loss,
    loss_by_timestep,
    min_snr_weight,
    snr,
    training_noise,
)
from atelier.diffusion.parameterization import (
    PREDICTION_TYPES,
    predicted_x0,
    q_sample,
    training_target,
)
from atelier.diffusion.schedules import alphas_cumprod, make_betas

ABAR = alphas_cumprod(make_betas("scaled_linear"))
T = torch.tensor([0, 3, 120, 499, 500, 777, 998, 999])
SHAPE = (len(T), 4, 6, 6)


def batch(seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x0, noise, out = (torch.randn(SHAPE, generator=g, dtype=dtype) for _ in range(3))
    return x0, noise, out


def diffusers_scheduler(prediction_type: str, *, our_abar: bool = False) -> DDPMScheduler:
    """DDPM with our schedule; ``our_abar`` hands it our float64 cumprod, since in float32
    1 - abar_t cancels near t = 0 and SNR(0) is off by ~1e-4, which is not what is under test."""
    ref = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    if our_abar:
        ref.alphas_cumprod = ABAR
    return ref


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_uniform_loss_is_mse_to_diffusers_target(kind):
    x0, noise, out = batch()
    ref = diffusers_scheduler(kind)
    target = {"epsilon": noise, "sample": x0, "v_prediction": ref.get_velocity(x0, noise, T)}[kind]
    loss = diffusion_loss(out, x0, noise, T, ABAR, prediction_type=kind)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(F.mse_loss(out, target).item(), rel=1e-6)


def diffusers_min_snr_loss(out, target, scheduler, timesteps, gamma):
    """diffusers' examples/text_to_image/train_text_to_image.py, the ``snr_gamma`` branch."""
    snr_t = compute_snr(scheduler, timesteps)
    weights = torch.stack([snr_t, gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
    if scheduler.config.prediction_type == "epsilon":
        weights = weights / snr_t
    elif scheduler.config.prediction_type == "v_prediction":
        weights = weights / (snr_t + 1)
    loss = F.mse_loss(out.float(), target.float(), reduction="none")
    return loss.mean(dim=list(range(1, len(loss.shape)))) * weights


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_matches_diffusers_recipe(kind, gamma):
    x0, noise, out = batch(1)
    ref = diffusers_scheduler(kind, our_abar=True)
    target = training_target(kind, x0, noise, ABAR[T])
    expected = diffusers_min_snr_loss(out, target, ref, T, gamma)
    per_image = diffusion_loss(
        out,
        x0,
        noise,
        T,
        ABAR,
        prediction_type=kind,
        weighting="min_snr",
        snr_gamma=gamma,
        reduction="none",
    )
    assert per_image.shape == (len(T),)
    torch.testing.assert_close(per_image, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(snr(ABAR, T), compute_snr(ref, T).double(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
def test_min_snr_weights_the_x0_error(kind):
    """Every parameterization's weighted loss is min(SNR, gamma) |x0_hat - x0|^2 (module doc)."""
    x0, noise, out = batch(2, torch.float64)
    abar = ABAR[T]
    x_t = q_sample(x0, abar, noise)
    x0_err = (predicted_x0(kind, out, x_t, abar) - x0).square().mean(dim=(1, 2, 3))
    snr_t = abar / (1 - abar)
    loss = diffusion_loss(
        out, x0, noise, T, ABAR, prediction_type=kind, weighting="min_snr", reduction="none"
    )
    torch.testing.assert_close(loss, snr_t.clamp(max=5.0) * x0_err, rtol=1e-9, atol=0)
    uniform = diffusion_loss(out, x0, noise, T, ABAR, prediction_type=kind, reduction="none")
    scale = {"epsilon": snr_t, "sample": torch.ones_like(snr_t), "v_prediction": snr_t + 1}[kind]
    torch.testing.assert_close(uniform, scale * x0_err, rtol=1e-9, atol=0)


def test_one_x0_estimate_costs_the_same_in_every_parameterization():
    x0, noise, _ = batch(3, torch.float64)
    abar = ABAR[T].reshape(-1, 1, 1, 1)
    x_t = q_sample(x0, ABAR[T], noise)
    x0_hat = x0 + 0.1 * torch.sin(7 * x0)
    eps_hat = (x_t - abar.sqrt() * x0_hat) / (1 - abar).sqrt()
    losses = [
        diffusion_loss(
            training_target(kind, x0_hat, eps_hat, ABAR[T]),
            x0,
            noise,
            T,
            ABAR,
            prediction_type=kind,
            weighting="min_snr",
            reduction="none",
        )
        for kind in PREDICTION_TYPES
    ]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(losses[0], losses[2], rtol=1e-8, atol=1e-12)


def test_min_snr_is_finite_at_zero_terminal_snr():
    abar = alphas_cumprod(make_betas("scaled_linear", zero_terminal_snr=True))
    snr_t = snr(abar, torch.tensor([999]))
    assert snr_t.item() == 0
    assert min_snr_weight(snr_t, "epsilon").item() == 1  # the limit of min(SNR, g) / SNR
    assert min_snr_weight(snr_t, "sample").item() == 0
    assert min_snr_weight(snr_t, "v_prediction").item() == 0
    x0, noise, out = batch(4)
    for kind in PREDICTION_TYPES:
        loss = diffusion_loss(out, x0, noise, T, abar, prediction_type=kind, weighting="min_snr")
        assert torch.isfinite(loss)


def test_mean_reduction_is_the_mean_of_per_image_losses_and_differentiable():
    x0, noise, out = batch(5)
    out.requires_grad_(True)
    kwargs = {"prediction_type": "v_prediction", "weighting": "min_snr"}
    per_image = diffusion_loss(out, x0, noise, T, ABAR, reduction="none", **kwargs)
    mean = diffusion_loss(out, x0, noise, T, ABAR, **kwargs)
    torch.testing.assert_close(mean, per_image.mean())
    mean.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()


# Offset noise ----------------------------------------------------------------------------------


def test_zero_offset_is_plain_normal_noise():
    x0 = torch.zeros(SHAPE)
    noise = training_noise(x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(noise, torch.randn(SHAPE, generator=torch.Generator().manual_seed(6)))


def test_offset_is_constant_per_image_and_channel():
    x0, offset = torch.zeros(500, 4, 6, 6), 0.1
    noise = training_noise(x0, offset=offset, generator=torch.Generator().manual_seed(7))
    base = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))
    shift = noise - base  # (B, C, H, W)
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))
    assert shift[:, :, 0, 0].std().item() == pytest.approx(offset, rel=0.1)


@pytest.mark.parametrize("offset", [-0.1, float("nan")])
def test_bad_offset_is_rejected(offset):
    with pytest.raises(ValueError, match="non-negative"):
        training_noise(torch.zeros(SHAPE), offset=offset)


def test_offset_needs_channels():
    with pytest.raises(ValueError, match=r"\(B, C, ...\)"):
        training_noise(torch.zeros(4, 8), offset=0.1)


# Loss by timestep ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_buckets", [10, 3])
def test_loss_by_timestep_matches_a_plain_loop(n_buckets):
    g = torch.Generator().manual_seed(8)
    t = torch.randint(0, 1000, (300,), generator=g)
    losses = torch.rand(300, generator=g)
    report = loss_by_timestep(losses, t, 1000, n_buckets)
    assert report.edges[0] == 0 and report.edges[-1] == 1000 and len(report.edges) == n_buckets + 1
    assert report.count.sum() == 300
    for k in range(n_buckets):
        inside = (t >= report.edges[k]) & (t < report.edges[k + 1])
        assert report.count[k] == inside.sum()
        assert report.mean[k].item() == pytest.approx(losses[inside].double().mean().item())


def test_empty_buckets_report_nan():
    report = loss_by_timestep(torch.tensor([1.0, 3.0]), torch.tensor([5, 7]), 1000)
    assert report.count.tolist() == [2] + [0] * 9
    assert report.mean[0] == 2.0 and torch.isnan(report.mean[1:]).all()


# Validation ------------------------------------------------------------------------------------


def test_bad_loss_options_name_the_choices():
    x0, noise, out = batch()
    with pytest.raises(ValueError, match="uniform, min_snr"):
        diffusion_loss(out, x0, noise, T, ABAR, prediction_type="epsilon", weighting="p2")
    with pytest.raises(ValueError, match="mean, none"):
        diffusion_loss(out, x0, noise, T, ABAR, prediction_type="epsilon", reduction="sum")
    with pytest.raises(ValueError, match="epsilon, sample, v_prediction"):
        diffusion_loss(out, x0, noise, T, ABAR, prediction_type="score")
    for gamma in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="snr_gamma"):
            diffusion_loss(
                out,
                x0,
                noise,
                T,
                ABAR,
                prediction_type="epsilon",
                weighting="min_snr",
                snr_gamma=gamma,
            )


def test_bad_shapes_and_timesteps_are_rejected():
    x0, noise, out = batch()
    with pytest.raises(ValueError, match="one shape"):
        diffusion_loss(out[:, :1], x0, noise, T, ABAR, prediction_type="epsilon")
    with pytest.raises(ValueError, match="one timestep per image"):
        diffusion_loss(out, x0, noise, T[:3], ABAR, prediction_type="epsilon")
    with pytest.raises(ValueError, match="integers"):
        diffusion_loss(out, x0, noise, T.float(), ABAR, prediction_type="epsilon")
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        diffusion_loss(out, x0, noise, T + 1, ABAR, prediction_type="epsilon")
    with pytest.raises(ValueError, match="n_buckets"):
        loss_by_timestep(torch.ones(2), torch.tensor([1, 2]), 1000, 0)
