"""Training the feature networks FID and KID use: the shapes one on each grid cell's content,
the real-set one (``models/class_features.py``) on each picture's labels."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from atelier.data.base import CaptionedImages, fit_images
from atelier.data.shapes import ShapesDataset
from atelier.models.class_features import ClassFeatureNet
from atelier.models.shapes_features import ShapesFeatureNet, cell_targets
from atelier.training.task import Logs


class CellTargets:
    """(image, (9,) cell classes) pairs from a shapes dataset."""

    def __init__(self, data: ShapesDataset) -> None:
        self.data = data
        self.targets = torch.stack([cell_targets(data.spec(i)) for i in range(len(data))])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index][0], self.targets[index]


class FeatureNetTask:
    def __init__(self, net: ShapesFeatureNet) -> None:
        self.net = net

    def modules(self) -> dict[str, nn.Module]:
        return {"features": self.net}

    def loss(
        self, batch: tuple[torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, Logs]:
        images, targets = batch
        logits = self.net.classify(fit_images(images, self.net.config.image_size))  # (B, 9, 37)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        cells = (logits.argmax(-1) == targets).float()
        return loss, {
            "cell_accuracy": float(cells.mean()),
            "image_accuracy": float(cells.all(1).float().mean()),
        }


class LabelledImages:
    """(image, (H,) class indices) pairs: ``images``' pictures with one label per labelling."""

    def __init__(self, images: CaptionedImages, targets: torch.Tensor) -> None:
        if targets.ndim != 2 or len(targets) != len(images):
            raise ValueError(f"need (N, H) targets for {len(images)} images, got "
                             f"{tuple(targets.shape)}")  # fmt: skip
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index][0], self.targets[index]


def class_indices(values: Sequence[Hashable]) -> tuple[torch.Tensor, list[Hashable]]:
    """(N,) the index of each value among the sorted distinct ``values``, and those values."""
    classes = sorted(set(values), key=str)
    index = {v: k for k, v in enumerate(classes)}
    return torch.tensor([index[v] for v in values]), classes


class ClassFeatureTask:
    """The mean cross-entropy of every head of a :class:`ClassFeatureNet`, on pictures moved by
    ``augment`` (``(images, step) -> images``) when given; logs each head's accuracy."""

    def __init__(
        self,
        net: ClassFeatureNet,
        *,
        heads: Sequence[str],
        augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ) -> None:
        if len(heads) != len(net.config.classes):
            raise ValueError(f"name each of the {len(net.config.classes)} heads, got {heads}")
        self.net, self.heads, self.augment = net, list(heads), augment

    def modules(self) -> dict[str, nn.Module]:
        return {"features": self.net}

    def loss(
        self, batch: tuple[torch.Tensor, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, Logs]:
        images, targets = batch
        if self.augment is not None and self.net.training:
            images = self.augment(images, step)
        logits = self.net.logits(fit_images(images, self.net.config.image_size))
        losses, logs = [], {}
        for k, (name, head) in enumerate(zip(self.heads, logits)):
            losses.append(F.cross_entropy(head, targets[:, k]))
            logs[f"{name}_accuracy"] = float((head.argmax(1) == targets[:, k]).float().mean())
        return torch.stack(losses).mean(), logs
