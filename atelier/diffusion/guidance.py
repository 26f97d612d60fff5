"""Guidance as wrappers around the model function: samplers never know it exists.

Two layers can be wrapped. A conditional network ``net(x_t, t, cond) -> output`` becomes a plain
``model(x_t, t) -> output`` (what :class:`~atelier.diffusion.denoiser.VPDenoiser` takes) by
classifier-free guidance; a denoiser ``D(x, sigma, t) -> x_0`` becomes another denoiser by
classifier guidance or by thresholding its x_0 estimate.

Notation: s is the guidance scale, eps_c / eps_u the conditional / unconditional network
outputs, abar_t as in ``schedules.py``, and x_t = x / sqrt(1 + sigma^2) the VP latent of the VE
latent x. Every wrapper returns a tensor shaped like its input latent, whatever its options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from atelier.diffusion.denoiser import Denoiser, ModelFn, per_image
from atelier.diffusion.parameterization import broadcast

CondNet = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
Classifier = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def concat_cond(a: Any, b: Any, *, paired: bool = True) -> Any:
    """Stack two conditionings along dim 0: tensors directly, dataclasses by field.

    Fields that are ``None`` in both stay ``None``; nested dataclasses recurse. This is what lets
    one network call serve both halves of classifier-free guidance. ``paired`` requires equal
    batches (one unconditional row per conditional one); a composition has more conditional rows.
    """
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if paired and a.shape[:1] != b.shape[:1]:
            raise ValueError(f"cannot pair a batch of {a.shape[0]} with one of {b.shape[0]}")
        return torch.cat([a, b])
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        fields = [f.name for f in dataclasses.fields(a) if f.init]
        return dataclasses.replace(
            a,
            **{
                name: concat_cond(getattr(a, name), getattr(b, name), paired=paired)
                for name in fields
            },
        )
    raise TypeError(
        "conditionings must both be tensors, both None or both the same dataclass; "
        f"got {type(a).__name__} and {type(b).__name__}"
    )


def _check_scale(scale: float | torch.Tensor) -> None:
    finite = bool(torch.isfinite(scale).all()) if isinstance(scale, torch.Tensor) else (
        math.isfinite(scale))  # fmt: skip
    if not finite:
        raise ValueError(f"guidance scale must be a finite number, got {scale!r}")


def _check_phi(phi: float) -> None:
    if not 0.0 <= phi <= 1.0:
        raise ValueError(f"guidance rescale phi must be in [0, 1], got {phi!r}")


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2024, eqs. 15-16): match each image's std to the conditional's.

    x_rescaled = guided * std(cond) / std(guided), then phi * x_rescaled + (1 - phi) * guided;
    the std runs over all but the batch axis. Large scales inflate the guided prediction's std,
    which overexposes images; phi < 1 keeps some of the un-rescaled contrast.
    """
    _check_phi(phi)
    dims = list(range(1, guided.ndim))
    ratio = cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)  # (B, 1, ...)
    return guided * (phi * ratio + (1 - phi))


@dataclasses.dataclass(frozen=True)
class Composition:
    """Composable diffusion (Liu et al. 2022): several conditional rows guide one image.

    Row k of the conditional batch belongs to image ``image[k]`` (K,) with weight ``weight[k]``
    (K,), and with s the guidance scale

        out_b = eps_u,b + s * sum over k with image[k] = b of weight[k] (eps_c,k - eps_u,b),

    the conjunction of the rows' concepts (AUTOMATIC1111's ``AND``). One row of weight 1 per
    image is plain classifier-free guidance; a negative weight steers away from its row.
    """

    image: torch.Tensor
    weight: torch.Tensor
    images: int  # B, the batch the rows belong to

    def __post_init__(self) -> None:
        if self.image.ndim != 1 or self.image.shape != self.weight.shape:
            raise ValueError(
                f"a composition needs one image index and one weight per row, got shapes "
                f"{tuple(self.image.shape)} and {tuple(self.weight.shape)}"
            )
        if not torch.isfinite(self.weight).all():
            raise ValueError(f"composition weights must be finite, got {self.weight.tolist()}")
        if (
            len(self.image)
            and not 0 <= int(self.image.min()) <= int(self.image.max()) < self.images
        ):
            raise ValueError(f"composition rows name images outside a batch of {self.images}")


def classifier_free_guidance(
    net: CondNet,
    cond: Any,
    uncond: Any,
    scale: float | torch.Tensor,
    *,
    rescale: float = 0.0,
    interval: tuple[float, float] | None = None,
    composition: Composition | None = None,
) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022) as a model ``(x_t, t) -> output``.

    output = eps_u + s (eps_c - eps_u), conditional and unconditional halves evaluated in one
    network call on a doubled batch (cond first). ``uncond`` is whatever the unconditional branch
    should see: the null embedding, or the encoded negative prompt. s = 1 is the conditional
    model alone and s = 0 the unconditional one; Ho & Salimans' w is s - 1. ``scale`` may be one
    per image (B,), as a latent consistency distillation's teacher is guided at each image's own.

    Guiding the raw output is exact for every prediction type: x_0 is affine in the output with
    coefficients set by x_t and t alone, so mixing outputs with weights summing to 1 mixes the
    x_0 estimates the same way. ``rescale`` is phi of :func:`rescale_guidance`, applied to the
    output as diffusers does (being non-linear, it does depend on the prediction type).

    ``interval = (t_lo, t_hi)`` guides only images whose timestep lies in [t_lo, t_hi]
    (Kynkäänniemi et al. 2024); elsewhere the output is the conditional one, and a step with no
    image inside calls the network on the conditional half only. The paper states intervals in
    sigma; ``SamplingPlan.t_of`` converts, as t grows with sigma.

    With a ``composition``, ``cond`` holds its K rows and ``uncond`` one row per image; the
    network sees the K + B rows in one call, and what stands for the conditional output
    (outside the interval, and the reference of ``rescale``) is the composition at s = 1.
    """
    _check_scale(scale)
    _check_phi(rescale)
    if interval is not None:
        lo, hi = interval
        if not lo <= hi:
            raise ValueError(f"guidance interval needs lo <= hi, got ({lo}, {hi})")
    per_row = isinstance(scale, torch.Tensor)
    if composition is not None:
        if per_row:
            raise ValueError("a composition is guided at one scale, not one per image")
        return _composed_guidance(net, cond, uncond, scale, rescale, interval, composition)
    pair = concat_cond(cond, uncond)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = per_image(t, x_t)
        inside = torch.ones_like(t, dtype=torch.bool)
        if interval is not None:
            inside = (t >= interval[0]) & (t <= interval[1])  # (B,)
        if (not per_row and scale == 1) or not inside.any():
            return net(x_t, t, cond)
        out_c, out_u = net(torch.cat([x_t, x_t]), torch.cat([t, t]), pair).chunk(2)
        s = broadcast(scale, out_c) if per_row else scale
        guided = out_u + s * (out_c - out_u)
        if rescale > 0:
            guided = rescale_guidance(guided, out_c, rescale)
        return torch.where(inside.reshape(-1, *([1] * (guided.ndim - 1))), guided, out_c)

    return model


def embedded_guidance(
    net: Callable[[torch.Tensor, torch.Tensor, Any, torch.Tensor], torch.Tensor],
    cond: Any,
    scale: float | torch.Tensor,
) -> ModelFn:
    """Guidance a network was taught to take as an input, as a model ``(x_t, t) -> output``.

    A latent consistency model (Luo et al. 2023) distilled from a teacher guided at scale s
    reads s itself (its w-embedding): ``net(x_t, t, cond, s)`` with s (B,), one pass on the
    conditional rows alone, with no unconditional branch to steer away from. ``scale`` is one
    number or one per image (B,).
    """
    _check_scale(scale)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(scale, dtype=torch.float32, device=x_t.device)
        return net(x_t, per_image(t, x_t), cond, s.expand(x_t.shape[0]) if s.ndim == 0 else s)

    return model


def _composed_guidance(
    net: CondNet,
    cond: Any,
    uncond: Any,
    scale: float,
    rescale: float,
    interval: tuple[float, float] | None,
    composition: Composition,
) -> ModelFn:
    pair = concat_cond(cond, uncond, paired=False)
    rows = composition.image.long()  # (K,)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = per_image(t, x_t)
        if x_t.shape[0] != composition.images:
            raise ValueError(
                f"a composition of {composition.images} images guides a batch of {x_t.shape[0]}"
            )
        k, index = rows.shape[0], rows.to(x_t.device)
        out = net(torch.cat([x_t[index], x_t]), torch.cat([t[index], t]), pair)
        out_c, out_u = out[:k], out[k:]  # (K, ...), (B, ...)
        weight = broadcast(composition.weight.to(out), out_c)  # (K, 1, ...)
        delta = torch.zeros_like(out_u).index_add_(0, index, weight * (out_c - out_u[index]))
        composed = out_u + delta  # the composition at s = 1
        guided = out_u + scale * delta
        if rescale > 0:
            guided = rescale_guidance(guided, composed, rescale)
        if interval is None:
            return guided
        inside = (t >= interval[0]) & (t <= interval[1])  # (B,)
        return torch.where(inside.reshape(-1, *([1] * (guided.ndim - 1))), guided, composed)

    return model


def gradient_guidance(
    denoiser: Denoiser,
    log_density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scale: float,
    *,
    max_shift: float | None = None,
) -> Denoiser:
    """Steer a VE denoiser by the gradient of a noise-aware log-density (ADM, GLIDE).

    ``log_density(x_t, t) -> (B,)`` reads VP latents x_t = x / sqrt(1 + sigma^2) (a noise-aware
    classifier's log p(y | x_t, t), a noised CLIP's similarity to the prompt). Then

        D'(x, sigma, t) = D(x, sigma, t) + s sigma^2 grad_x log_density(x_t, t),

    the score sigma^-2 (D - x) shifted by s grad_x. ``max_shift`` caps each image's RMS change of
    the x_0 estimate (None: no cap): on a zero-terminal-SNR schedule's first step sigma^2 is
    about 1.7e7, where a gradient of noise would otherwise replace the sample.
    """
    _check_scale(scale)

    def guided(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        denoised = denoiser(x, sigma, t)
        if scale == 0:
            return denoised
        sigma = per_image(sigma, x).to(torch.float64)  # (B,)
        alpha = broadcast((1 / (1 + sigma**2)).sqrt(), x)  # sqrt(abar), as VPDenoiser scales x
        # Samplers run under no_grad; the gradient needs a graph all the same.
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x_t = (x_in * alpha).to(x.dtype)
            log_p = log_density(x_t, per_image(t, x).to(x.dtype))  # (B,)
            (grad,) = torch.autograd.grad(log_p.sum(), x_in)
        shift = scale * broadcast(sigma**2, x) * grad.double()
        if max_shift is not None:
            rms = shift.flatten(1).pow(2).mean(1).sqrt()  # (B,)
            shift = shift * broadcast((max_shift / rms.clamp(min=1e-30)).clamp(max=1.0), shift)
        return (denoised.double() + shift).to(denoised.dtype)

    return guided


def class_log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y | x) (B,) from logits (B, K) and classes y (B,), or from M independent heads:
    logits (B, M, K) and y (B, M), summed over the heads whose y is not -1 (no target).
    Padded classes of a head hold logits of -inf."""
    log_p = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
    y = y.to(log_p.device).long()
    if log_p.ndim == 2:
        if y.shape != log_p.shape[:1]:
            raise ValueError(f"classes must be (B,) = ({log_p.shape[0]},), got {tuple(y.shape)}")
        return log_p.gather(-1, y[:, None])[:, 0]
    if log_p.ndim != 3 or y.shape != log_p.shape[:2]:
        raise ValueError(f"heads need logits (B, M, K) and classes (B, M), got "
                         f"{tuple(log_p.shape)} and {tuple(y.shape)}")  # fmt: skip
    chosen = log_p.gather(-1, y.clamp(min=0)[..., None])[..., 0]  # (B, M)
    return torch.where(y >= 0, chosen, torch.zeros_like(chosen)).sum(1)


def classifier_guidance(
    denoiser: Denoiser,
    classifier: Classifier,
    y: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    scale: float,
    *,
    max_shift: float | None = None,
) -> Denoiser:
    """Classifier guidance (Dhariwal & Nichol 2021) on a VE denoiser.

    ``classifier(x_t, t) -> logits (B, K)`` is trained on VP latents; ``y`` (B,) holds the target
    classes (or, for a classifier of M independent attributes, logits (B, M, K) and y (B, M),
    -1 where an attribute is free: :func:`class_log_likelihood`). ``y`` may instead be a function
    choosing the targets from each step's (detached) logits, for targets that depend on what the
    sample already shows (a layout the prompt leaves open). With x_t = x / sqrt(1 + sigma^2),

        D'(x, sigma, t) = D(x, sigma, t) + s sigma^2 grad_x log p(y | x_t, t),

    the score sigma^-2 (D - x) shifted by s grad_x log p. With abar = 1 / (1 + sigma^2) this is
    exactly the paper's eps' = eps - s sqrt(1 - abar) grad_{x_t} log p(y | x_t, t): both move
    x_0 by s (1 - abar) / sqrt(abar) grad_{x_t} log p. ``max_shift``: :func:`gradient_guidance`.
    """

    def log_density(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = classifier(x_t, t)
        return class_log_likelihood(logits, y(logits.detach()) if callable(y) else y)

    return gradient_guidance(denoiser, log_density, scale, max_shift=max_shift)


def dynamic_threshold(
    denoiser: Denoiser, percentile: float = 0.995, *, s_max: float = math.inf
) -> Denoiser:
    """Imagen's dynamic thresholding (Saharia et al. 2022) of the x_0 estimate.

    Per image, s = max(1, quantile(|x_0|, percentile)), capped at ``s_max`` (diffusers'
    ``sample_max_value``); x_0 is clipped to [-s, s] and divided by s. Pixels near saturation are
    pushed inwards instead of piling up at the boundary, which large guidance scales cause.
    """
    if not 0.0 < percentile <= 1.0:
        raise ValueError(f"percentile must be in (0, 1], got {percentile!r}")
    if not s_max >= 1.0:
        raise ValueError(f"s_max must be at least 1, got {s_max!r}")

    def thresholded(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = denoiser(x, sigma, t)
        # quantile needs float32 or float64, and half precision would blur the percentile.
        flat = x0.reshape(x0.shape[0], -1).to(torch.promote_types(x0.dtype, torch.float32))
        s = flat.abs().quantile(percentile, dim=1).clamp(1.0, s_max)[:, None]  # (B, 1)
        return (flat.clamp(-s, s) / s).reshape(x0.shape).to(x0.dtype)

    return thresholded


def static_threshold(denoiser: Denoiser) -> Denoiser:
    """Clip the x_0 estimate to [-1, 1], the data range (Ho et al. 2020; Saharia et al. 2022)."""

    def clipped(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return denoiser(x, sigma, t).clamp(-1.0, 1.0)

    return clipped
