"""Training the shapes feature network: cross-entropy of each grid cell's content."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atelier.data.base import fit_images
from atelier.data.shapes import ShapesDataset
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
