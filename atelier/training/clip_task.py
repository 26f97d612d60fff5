"""Contrastive image-text training (CLIP; Radford et al. 2021) as a task for the generic loop.

Per batch of B (image, caption) pairs, the logits L = exp(s) I T^T (B, B) score every image
against every caption; the loss is the mean of the cross-entropies of the rows (each image must
pick its caption) and of the columns (each caption its image). A caption that occurs twice in a
batch ("a red circle" is common in the shapes world) is a false negative for the other image;
the loss counts every exact duplicate as a correct answer, so identical captions do not fight.
With hard negatives (NegCLIP; ``shapes/negatives.py``) each image's row also holds one false
caption of that image, one fact away from its true one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from atelier.data.base import fit_images
from atelier.data.recaption import choose_captions
from atelier.eval.clip_metrics import zero_shot_accuracy
from atelier.models.clip import CLIP
from atelier.training.task import Logs


def contrastive_loss(
    logits: torch.Tensor,
    captions: Sequence[str] | None = None,
    negatives: Sequence[str] = (),
) -> torch.Tensor:
    """Symmetric InfoNCE over ``logits`` (B, B + M) whose diagonal holds the true pairs.

    With ``captions``, every pair whose captions are identical counts as a true pair: the target
    of each row and column is uniform over its true pairs. The last M columns are hard negatives
    (NegCLIP): each image's row also competes against them, while the caption-to-image
    cross-entropy runs over the B true captions only. A negative identical to some image's caption
    counts as a true pair for that image.
    """
    b, m = logits.shape[0], len(negatives)
    if logits.shape != (b, b + m):
        raise ValueError(
            f"logits must be (B, B + M) = ({b}, {b + m}) for {m} negatives, "
            f"got {tuple(logits.shape)}"
        )
    if m and captions is None:
        raise ValueError("hard negatives need the captions, to know which pairs are true")
    if captions is None:
        target = torch.eye(b, device=logits.device)
    else:
        texts = list(captions) + list(negatives)
        ids = {c: k for k, c in enumerate(dict.fromkeys(texts))}
        keys = torch.tensor([ids[c] for c in texts], device=logits.device)
        target = (keys[:b, None] == keys[None, :]).to(logits.dtype)  # (B, B + M)
    rows = F.cross_entropy(logits, target / target.sum(1, keepdim=True))
    cols_target = target[:, :b].T
    cols = F.cross_entropy(logits[:, :b].T, cols_target / cols_target.sum(1, keepdim=True))
    return (rows + cols) / 2


class CLIPTask:
    """Train a :class:`CLIP` (and its text tower if trainable) on captioned images."""

    def __init__(
        self,
        clip: CLIP,
        *,
        probe: tuple[torch.Tensor, list[str], list[int]] | None = None,
        augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ):
        self.clip = clip
        self.probe = probe  # (images, class labels, true class per image) for zero-shot checks
        self.augment = augment  # (images, step) -> moved images (data/augment.py), or None

    def modules(self) -> dict[str, nn.Module]:
        return {"clip": self.clip}

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]] | tuple, step: int
    ) -> tuple[torch.Tensor, Logs]:
        images, captions = batch[0], list(batch[1])
        negatives = choose_captions(batch[2]) if len(batch) > 2 else []
        if self.augment is not None and self.clip.training:
            images = self.augment(images, step)
        images = fit_images(images, self.clip.image_size)
        logits = self.clip(images, captions + negatives)  # (B, B + M)
        loss = contrastive_loss(logits, captions, negatives)
        b = len(captions)
        hits = (logits[:, :b].argmax(1) == torch.arange(b, device=logits.device)).float()
        logs = {
            "batch_top1": float(hits.mean()),
            "temperature": float(1 / self.clip.temperature_scale().detach()),
        }
        if negatives:  # how often each image scores its caption above its own hard negative
            own = logits.diagonal()
            logs["negative_won"] = float((logits[:, b:].diagonal() >= own).float().mean())
        return loss, logs

    def sample(self, step: int, out_dir: Path) -> None:
        """Zero-shot accuracy on the probe set, appended to ``samples.jsonl``."""
        if self.probe is None:
            return
        images, labels, truth = self.probe
        accuracy = zero_shot_accuracy(self.clip, images, labels, truth)
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "zero_shot": accuracy, "n": len(truth)}) + "\n")
