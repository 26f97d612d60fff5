"""Training the digit classifier: cross-entropy on real MNIST digits, each batch moved by a small
random affine map so the judge reads digits drawn a little off-centre, tilted or resized, as a
generator draws them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atelier.data.augment import random_affine
from atelier.data.mnist import Digits
from atelier.models.digit_classifier import DigitClassifier
from atelier.training.task import Logs

PAD = 2  # 28 px digits in a 2 px border: the 32 px canvas of `atelier data mnist`


def digit_tensors(digits: Digits, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits ``mask`` picks as (N, 1, 32, 32) float32 in [-1, 1] (ink +1) and (N,) labels."""
    pixels = np.pad(digits.images[mask], ((0, 0), (PAD, PAD), (PAD, PAD)))
    images = torch.from_numpy(pixels).float().div(127.5).sub(1).unsqueeze(1)
    return images, torch.from_numpy(digits.labels[mask])


class DigitImages:
    """(image (1, 32, 32), label) pairs from tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class DigitTask:
    """Cross-entropy of the digit, on randomly moved digits (``augment``); logs accuracy."""

    def __init__(self, net: DigitClassifier, *, augment: bool = True, seed: int = 0) -> None:
        self.net, self.augment, self.seed = net, augment, seed

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.net}

    def loss(
        self, batch: tuple[torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, Logs]:
        images, labels = batch
        if self.augment and self.net.training:
            # Drawn from (seed, step): a resumed run moves its batches as the killed one would.
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            images = random_affine(images, generator)
        logits = self.net(images)  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        return loss, {"accuracy": float((logits.argmax(1) == labels).float().mean())}
