"""The GAN objective's plain functions: the hinge terms, and MA-GP and R1 against an autograd
reference that differentiates every sample's logit on its own, against the closed form of a
linear discriminator, and (their gradient in D's parameters) against finite differences."""

import pytest
import torch
from torch import nn

from atelier.gan.losses import (
    generator_loss,
    hinge_fake,
    hinge_real,
    matching_aware_gradient_penalty,
    r1_penalty,
)


class TinyD(nn.Module):
    """A small nonlinear D(x, s) with no batch interaction, as the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.text = nn.Linear(5, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)).mean((2, 3)) * torch.sigmoid(self.text(s))
        return self.out(torch.nn.functional.leaky_relu(h, 0.2)).flatten()


def reference_squared_norms(d, x, s, inputs="xs"):
    """||grad D(x_i, s_i)||^2 per sample, each logit differentiated alone (no sum trick)."""
    out = []
    for i in range(len(x)):
        xi, si = x[i : i + 1].clone().requires_grad_(), s[i : i + 1].clone().requires_grad_()
        gx, gs = torch.autograd.grad(d(xi, si).sum(), (xi, si))
        out.append(gx.square().sum() + (gs.square().sum() if "s" in inputs else 0))
    return torch.stack(out)


def inputs(seed=0, b=5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, 6, 6, generator=g, dtype=dtype).requires_grad_()
    s = torch.randn(b, 5, generator=g, dtype=dtype).requires_grad_()
    return x, s


def test_ma_gp_matches_a_per_sample_autograd_reference():
    torch.manual_seed(0)
    d = TinyD()
    x, s = inputs()
    got = matching_aware_gradient_penalty(d(x, s), x, s, k=2.0, p=6.0)
    expected = 2.0 * reference_squared_norms(d, x.detach(), s.detach()).pow(3).mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-8)
    got = matching_aware_gradient_penalty(d(x, s), x, s, k=0.5, p=2.0)
    expected = 0.5 * reference_squared_norms(d, x.detach(), s.detach()).mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-8)


def test_r1_matches_a_per_sample_autograd_reference():
    torch.manual_seed(1)
    d = TinyD()
    x, s = inputs(1)
    got = r1_penalty(d(x, s), x, gamma=10.0)
    expected = 5.0 * reference_squared_norms(d, x.detach(), s.detach(), inputs="x").mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-8)


def test_a_linear_discriminator_gives_the_closed_form():
    # D(x, s) = <w, x> + <v, s>: its gradient is (w, v) for every sample.
    w, v = torch.randn(3, 6, 6), torch.randn(5)
    x, s = inputs(2)
    logits = (x * w).flatten(1).sum(1) + s @ v
    squared = w.square().sum() + v.square().sum()
    torch.testing.assert_close(matching_aware_gradient_penalty(logits, x, s), 2 * squared**3)
    torch.testing.assert_close(r1_penalty(logits, x, gamma=2.0), w.square().sum())


def test_the_penalties_gradient_in_the_parameters_matches_finite_differences():
    torch.manual_seed(3)
    d = TinyD().double()
    x, s = inputs(3, b=3, dtype=torch.float64)
    params = tuple(d.parameters())

    def penalty(*weights):
        state = {name: w for (name, _), w in zip(d.named_parameters(), weights)}
        logits = torch.func.functional_call(d, state, (x, s))
        return matching_aware_gradient_penalty(logits, x, s, k=2.0, p=6.0)

    assert torch.autograd.gradcheck(penalty, params, eps=1e-6, atol=1e-5)


def test_a_zero_gradient_gives_a_zero_penalty_and_finite_gradients():
    # DF-GAN's sqrt-then-power form has an infinite derivative here; ours does not.
    x, s = inputs(4)
    weight = torch.zeros(1, requires_grad=True)
    logits = weight * (x.flatten(1).sum(1) + s.sum(1))
    penalty = matching_aware_gradient_penalty(logits, x, s)
    (grad,) = torch.autograd.grad(penalty, weight)
    assert penalty.item() == 0.0 and torch.isfinite(grad).all()


def test_hinge_terms():
    logits = torch.tensor([2.0, 0.5, -0.5, -2.0])
    assert hinge_real(logits).item() == pytest.approx((0 + 0.5 + 1.5 + 3.0) / 4)
    assert hinge_fake(logits).item() == pytest.approx((3.0 + 1.5 + 0.5 + 0) / 4)
    assert generator_loss(logits).item() == pytest.approx(0.0)
