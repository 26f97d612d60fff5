"""Training the noise-aware guides on one diffusion model's noised latents (ADM; GLIDE).

Both tasks see clean latents z_0 in the diffusion model's space (its autoencoder's posterior mode
through its latent normalisation; the image itself for a pixel model), draw t ~ U{0, T-1} and
eps ~ N(0, I), and form z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps with the model's schedule:
exactly what the guided sampler will show them.

- :class:`NoisedCLIPTask`: the noised image tower learns to embed z_t where the frozen CLIP's text
  tower puts the caption, by CLIP's symmetric InfoNCE (duplicate captions count as true pairs).
- :class:`NoisedClassifierTask`: cross-entropy of each cell's colour, shape and size heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.parameterization import q_sample
from atelier.models.noised_classifier import NoisedShapesClassifier
from atelier.models.noised_clip import NoisedCLIP
from atelier.training.clip_task import contrastive_loss
from atelier.training.task import Logs


def noised(z0: torch.Tensor, abar: torch.Tensor,
           n_train: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(z_t, t): each latent noised at its own uniformly drawn timestep."""
    t = torch.randint(0, n_train, (z0.shape[0],), device=z0.device)
    z_t = q_sample(z0, abar.to(z0.device)[t].to(z0.dtype), torch.randn_like(z0))
    return z_t, t


class NoisedCLIPTask:
    """Train a :class:`NoisedCLIP`'s image tower on (z_0, caption) pairs."""

    def __init__(self, model: NoisedCLIP, diffusion: DiffusionConfig) -> None:
        self.model, self.diffusion = model, diffusion
        self.abar = diffusion.alphas_cumprod().float()

    def modules(self) -> dict[str, nn.Module]:
        return {"visual": self.model.visual, "head": _Head(self.model)}

    def loss(self, batch: tuple[torch.Tensor, Sequence[str]],
             step: int) -> tuple[torch.Tensor, Logs]:  # fmt: skip
        z0, captions = batch[0], list(batch[1])
        with torch.no_grad():
            text = self.model.encode_text(captions)  # (B, E), the frozen CLIP's
        z_t, t = noised(z0, self.abar, self.diffusion.n_train)
        logits = self.model(z_t, t.to(z0.dtype), text)  # (B, B)
        loss = contrastive_loss(logits, captions)
        hits = (logits.argmax(1) == torch.arange(len(captions), device=logits.device)).float()
        low = t < self.diffusion.n_train // 2
        logs: Logs = {
            "batch_top1": float(hits.mean()),
            "temperature": float(1 / self.model.temperature_scale().detach()),
        }
        if low.any():
            logs["batch_top1_low_t"] = float(hits[low].mean())
        return loss, logs


class _Head(nn.Module):
    """The projection and temperature of a noised CLIP, trained beside its tower."""

    def __init__(self, model: NoisedCLIP) -> None:
        super().__init__()
        self.image_projection = model.image_projection
        self.logit_scale = model.logit_scale


class NoisedClassifierTask:
    """Train a :class:`NoisedShapesClassifier` on (z_0, (27,) cell-attribute targets) pairs."""

    def __init__(self, classifier: NoisedShapesClassifier, diffusion: DiffusionConfig) -> None:
        self.classifier, self.diffusion = classifier, diffusion
        self.abar = diffusion.alphas_cumprod().float()

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.classifier}

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor],
             step: int) -> tuple[torch.Tensor, Logs]:  # fmt: skip
        z0, targets = batch
        z_t, t = noised(z0, self.abar, self.diffusion.n_train)
        logits = self.classifier(z_t, t.to(z0.dtype))  # (B, 27, 7)
        return classifier_loss(logits, targets, t, self.diffusion.n_train)


def classifier_loss(
    logits: torch.Tensor, targets: torch.Tensor, t: torch.Tensor, n_train: int
) -> tuple[torch.Tensor, Logs]:
    """Mean cross-entropy over the 27 heads (a -1 target ignored), and accuracies for the logs:
    per head, and of whole images (all 9 cells right) at low noise (t < T / 4)."""
    flat, y = logits.float().flatten(0, 1), targets.flatten().long()
    loss = F.cross_entropy(flat, y, ignore_index=-1)
    right = (logits.argmax(-1) == targets) | (targets < 0)  # (B, 27)
    logs: Logs = {"head_accuracy": float(right.float().mean())}
    low = t < n_train // 4
    if low.any():
        logs["image_accuracy_low_t"] = float(right[low].all(1).float().mean())
    return loss, logs
