"""Train the shapes feature network (``kind = "features"``) that FID and KID use."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.kinds.card import model_card
from atelier.kinds.features import save_feature_net
from atelier.models.shapes_features import ShapesFeatureNet
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.features_task import CellTargets, FeatureNetTask
from atelier.training.loop import train
from atelier.training.recipe_data import held_out_scenes, recipe_images
from atelier.training.recipes import Recipe


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    data = CellTargets(recipe_images(recipe, None))
    torch.manual_seed(recipe.train.seed)
    net = ShapesFeatureNet(recipe.features)
    task = FeatureNetTask(net)
    ledger = CPULedger()
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "features", net)
    held_out = CellTargets(held_out_scenes(1000, recipe.data.resolution))
    x = torch.stack([held_out[i][0] for i in range(len(held_out))])
    with torch.no_grad():
        _, logs = FeatureNetTask(net.eval()).loss((x, held_out.targets), 0)
    body = (
        f"## Metrics (1000 fresh scenes, any split)\n\n- cell accuracy: "
        f"{logs['cell_accuracy']:.4f}\n- images with all 9 cells right: "
        f"{logs['image_accuracy']:.4f}"
    )
    card = model_card(recipe.name, command=command, init_from=recipe.init_from,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                      body=body, recipe=asdict(recipe))  # fmt: skip
    return save_feature_net(net, run_dir / "model", card=card)
