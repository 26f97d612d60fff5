"""CLIP guidance (Crowson 2021; Nichol et al. 2022, GLIDE): steer any denoiser by CLIP's gradient.

Notation: D(x, sigma, t) the denoiser (``denoiser.py``), x the VE latent; x_0 = D(x, sigma, t) its
estimate; ``decode`` maps x_0 to an image X in [-1, 1] (the autoencoder for a latent model, the
identity in pixel space); E(.) CLIP's unit image embedding, z_p the unit text embeddings of the
prompts p with weights w_p; c_1..c_n the cutouts of X (``cutouts.py``). Per image,

    d(a, b)  = 2 arcsin(||a - b|| / 2)^2          (spherical distance: theta^2 / 2 of the angle)
    L_clip   = sum_p w_p mean_k d(E(c_k), z_p)
    L_tv     = mean over pixels of the squared differences of neighbours (total variation)
    L_range  = mean over pixels of (X - clamp(X, -1, 1))^2
    L        = s L_clip + s_tv L_tv + s_range L_range

and the guided denoiser, as classifier guidance with log p = -L (k-diffusion's
``make_cond_model_fn``; the gradient runs through D itself, as the notebooks do):

    D'(x, sigma, t) = x_0 - sigma^2 (H W / 256^2) grad_x L.

The factor H W / 256^2 (X is H x W pixels) keeps the notebooks' scales: their losses average
over the pixels of a 256 px image, and a gradient through area-averaged cutouts shrinks as
1 / (H W), so the same s moves a 64 px image as it moves a 256 px one. s = 100 is mild, 1000
strong (the notebooks' default). ``max_shift`` caps each image's RMS change of x_0 (Disco
Diffusion's gradient clamp): at a zero-terminal-SNR schedule's first step sigma^2 is about
1.7e7, and an uncapped shift there would throw the sample away.

A negative weight pushes away from its prompt (VQGAN-CLIP's ``text:-1``). Each image is decoded
and embedded alone, and its cutouts come from its own generator: a batch equals its singles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from atelier.diffusion.cutouts import CutoutOptions, make_cutouts
from atelier.diffusion.denoiser import Denoiser, per_image
from atelier.diffusion.parameterization import broadcast

# CLIP's image tower: images (N, 3, S_c, S_c) in [-1, 1] -> unit embeddings (N, E).
ImageEmbedder = Callable[[torch.Tensor], torch.Tensor]
REFERENCE_PIXELS = 256 * 256  # the notebooks' image size, which their scales assume


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """2 arcsin(||x^ - y^|| / 2)^2 over the last axis, x^ and y^ the unit vectors; broadcasts.

    For unit vectors at angle theta, ||x - y|| = 2 sin(theta / 2), so this is theta^2 / 2:
    smooth, and growing with the angle itself where 1 - cos flattens out."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Total variation (B,) of images (B, C, H, W): the mean of squared differences to the right
    and lower neighbour, the edge replicated (so the last row and column add nothing)."""
    padded = F.pad(images, (0, 1, 0, 1), mode="replicate")
    dx = padded[..., :-1, 1:] - padded[..., :-1, :-1]
    dy = padded[..., 1:, :-1] - padded[..., :-1, :-1]
    return (dx**2 + dy**2).mean(dim=(1, 2, 3))


def range_loss(images: torch.Tensor) -> torch.Tensor:
    """(B,): the mean squared distance of every value to [-1, 1]."""
    return (images - images.clamp(-1, 1)).pow(2).mean(dim=(1, 2, 3))


@dataclass(frozen=True)
class CLIPTargets:
    """Unit text embeddings (B, P, E) of each image's P prompts, with weights (B, P)."""

    embeddings: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 3 or self.weights.shape != self.embeddings.shape[:2]:
            raise ValueError(
                f"targets need embeddings (B, P, E) and weights (B, P), got "
                f"{tuple(self.embeddings.shape)} and {tuple(self.weights.shape)}"
            )
        if not torch.isfinite(self.weights).all():
            raise ValueError(f"prompt weights must be finite, got {self.weights.tolist()}")

    @classmethod
    def single(cls, embeddings: torch.Tensor) -> CLIPTargets:
        """One prompt of weight 1 per image, from (B, E)."""
        return cls(embeddings[:, None], torch.ones(embeddings.shape[0], 1))


@dataclass(frozen=True)
class CLIPGuidanceOptions:
    """The notebooks' knobs: scale, cutouts, and the TV and range penalties' scales."""

    scale: float = 100.0  # clip_guidance_scale
    cutouts: CutoutOptions = field(default_factory=CutoutOptions)
    tv_scale: float = 0.0
    range_scale: float = 50.0
    max_shift: float | None = 1.0  # cap on the RMS change of each image's x_0; None: no cap

    def __post_init__(self) -> None:
        for name in ("scale", "tv_scale", "range_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_shift is not None and not (math.isfinite(self.max_shift)
                                               and self.max_shift > 0):  # fmt: skip
            raise ValueError(f"max_shift must be a positive number or None, got {self.max_shift!r}")


def clip_loss(
    image: torch.Tensor,
    *,
    embed: ImageEmbedder,
    cut_size: int,
    targets: torch.Tensor,
    weights: torch.Tensor,
    options: CLIPGuidanceOptions,
    generator: torch.Generator,
) -> torch.Tensor:
    """L of one image (C, H, W) against its prompts' embeddings (P, E) and weights (P,)."""
    cuts = make_cutouts(image, cut_size=cut_size, options=options.cutouts, generator=generator)
    image_embeds = embed(cuts)  # (n, E)
    dists = spherical_dist_loss(image_embeds[:, None], targets[None].to(image_embeds))  # (n, P)
    loss = options.scale * (dists.mean(0) * weights.to(dists)).sum()
    if options.tv_scale:
        loss = loss + options.tv_scale * tv_loss(image[None])[0]
    if options.range_scale:
        loss = loss + options.range_scale * range_loss(image[None])[0]
    return loss


def cap_shift(shift: torch.Tensor, max_rms: float | None) -> torch.Tensor:
    """``shift`` (B, ...) with each image's RMS scaled down to at most ``max_rms``."""
    if max_rms is None:
        return shift
    rms = shift.flatten(1).pow(2).mean(1).sqrt()  # (B,)
    factor = (max_rms / rms.clamp(min=1e-30)).clamp(max=1.0)
    return shift * broadcast(factor, shift)


def clip_guidance(
    denoiser: Denoiser,
    *,
    embed: ImageEmbedder,
    cut_size: int,
    targets: CLIPTargets,
    options: CLIPGuidanceOptions,
    generators: Sequence[torch.Generator],
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Denoiser:
    """The denoiser steered by CLIP: D' = D - sigma^2 (H W / 256^2) grad_x L (module docstring).

    ``decode`` maps one x_0 (1, C, h, w) to its image (1, 3, H, W) in [-1, 1], unclamped (the
    range penalty reads what lies outside); None for pixel space. ``generators``: one per image.
    """
    if len(generators) != targets.embeddings.shape[0]:
        raise ValueError(f"got {len(generators)} generators for {targets.embeddings.shape[0]} "
                         "images' targets; pass one per image")  # fmt: skip

    def guided(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(generators):
            raise ValueError(f"CLIP guidance set up for {len(generators)} images got a batch "
                             f"of {x.shape[0]}")  # fmt: skip
        if options.scale == 0 and options.tv_scale == 0 and options.range_scale == 0:
            return denoiser(x, sigma, t)
        # Samplers run under no_grad; CLIP's gradient needs a graph through D all the same.
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            denoised = denoiser(x_in, sigma, t)
            total, pixels = denoised.new_zeros(()), 0
            for b in range(x.shape[0]):
                image = denoised[b : b + 1] if decode is None else decode(denoised[b : b + 1])
                pixels = image.shape[-2] * image.shape[-1]
                total = total + clip_loss(
                    image[0], embed=embed, cut_size=cut_size, targets=targets.embeddings[b],
                    weights=targets.weights[b], options=options, generator=generators[b],
                )  # fmt: skip
            (grad,) = torch.autograd.grad(total, x_in)
        sigma = per_image(sigma, x).to(torch.float64)  # (B,)
        factor = broadcast(sigma**2 * pixels / REFERENCE_PIXELS, x)
        shift = cap_shift(-(factor * grad.double()), options.max_shift)
        return (denoised.detach().double() + shift).to(denoised.dtype)

    return guided
