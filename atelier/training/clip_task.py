"""Contrastive image-text training (CLIP; Radford et al. 2021) as a task for the generic loop.

Per batch of B (image, caption) pairs, the logits L = exp(s) I T^T (B, B) score every image
against every caption; the loss is the mean of the cross-entropies of the rows (each image must
pick its caption) and of the columns (each caption its image). A caption that occurs twice in a
batch ("a red circle" is common in the shapes world) is a false negative for the other image;
the loss counts every exact duplicate as a correct answer, so identical captions do not fight.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from atelier.data.base import fit_images
from atelier.eval.clip_metrics import zero_shot_accuracy
from atelier.models.clip import CLIP
from atelier.training.task import Logs


def contrastive_loss(logits: torch.Tensor, captions: Sequence[str] | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over ``logits`` (B, B) whose diagonal holds the true pairs.

    With ``captions``, every pair whose captions are identical counts as a true pair: the target
    of each row and column is uniform over its true pairs.
    """
    b = logits.shape[0]
    if logits.shape != (b, b):
        raise ValueError(f"logits must be square (B, B), got {tuple(logits.shape)}")
    if captions is None:
        target = torch.eye(b, device=logits.device)
    else:
        ids = {c: k for k, c in enumerate(dict.fromkeys(captions))}
        keys = torch.tensor([ids[c] for c in captions], device=logits.device)
        target = (keys[:, None] == keys[None, :]).to(logits.dtype)  # (B, B)
    rows = F.cross_entropy(logits, target / target.sum(1, keepdim=True))
    cols = F.cross_entropy(logits.T, target.T / target.T.sum(1, keepdim=True))
    return (rows + cols) / 2


class CLIPTask:
    """Train a :class:`CLIP` (and its text tower if trainable) on captioned images."""

    def __init__(
        self, clip: CLIP, *, probe: tuple[torch.Tensor, list[str], list[int]] | None = None
    ):
        self.clip = clip
        self.probe = probe  # (images, class labels, true class per image) for zero-shot checks

    def modules(self) -> dict[str, nn.Module]:
        return {"clip": self.clip}

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        images, captions = batch
        images = fit_images(images, self.clip.image_size)
        logits = self.clip(images, list(captions))  # (B, B)
        loss = contrastive_loss(logits, list(captions))
        hits = (logits.argmax(1) == torch.arange(len(captions), device=logits.device)).float()
        return loss, {
            "batch_top1": float(hits.mean()),
            "temperature": float(1 / self.clip.temperature_scale().detach()),
        }

    def sample(self, step: int, out_dir: Path) -> None:
        """Zero-shot accuracy on the probe set, appended to ``samples.jsonl``."""
        if self.probe is None:
            return
        images, labels, truth = self.probe
        accuracy = zero_shot_accuracy(self.clip, images, labels, truth)
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "zero_shot": accuracy, "n": len(truth)}) + "\n")
