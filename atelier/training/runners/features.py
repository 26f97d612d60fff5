"""Train a feature network (``kind = "features"``) that FID and KID use: the shapes world's cell
classifier, or a real set's picture classifier (``recipe.class_features``)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from atelier.data.augment import affine_jitter
from atelier.data.base import fit_images
from atelier.data.folder import ImageFolderDataset
from atelier.data.real import BACKGROUND, labels
from atelier.eval.fid import Resized
from atelier.eval.real_sets import feature_checks
from atelier.kinds.card import model_card
from atelier.kinds.features import save_feature_net
from atelier.models.class_features import ClassFeatureNet
from atelier.models.shapes_features import ShapesFeatureNet
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.features_task import (
    CellTargets,
    ClassFeatureTask,
    FeatureNetTask,
    LabelledImages,
    class_indices,
)
from atelier.training.loop import train
from atelier.training.recipe import Recipe, RecipeError
from atelier.training.recipe_data import (
    held_out_half,
    held_out_scenes,
    recipe_images,
    trained_on,
)

# What a real set's feature network learns to name: the metadata keys of its pictures.
HEADS = {"emoji": ("name", "category"), "mnist": ("digit",)}


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    if recipe.class_features is not None:
        return _run_classes(recipe, run_dir, resume=resume, data_dir=data_dir, command=command)
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


def _run_classes(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
                 command: str) -> Path:  # fmt: skip
    """The real set's picture classifier: one head per metadata key of :data:`HEADS`."""
    if recipe.data.source not in HEADS:
        raise RecipeError(f"{recipe.name}: class_features learns a real set's labels; set "
                          f"data.source to one of {', '.join(HEADS)}")  # fmt: skip
    heads = HEADS[recipe.data.source]
    images = recipe_images(recipe, data_dir)
    try:
        columns = [class_indices(labels(images, key)) for key in heads]
    except ValueError as err:
        raise RecipeError(f"{recipe.name}: {err}") from None
    targets = torch.stack([indices for indices, _ in columns], 1)  # (N, H)
    config = replace(recipe.class_features, classes=tuple(len(c) for _, c in columns))
    torch.manual_seed(recipe.train.seed)
    net = ClassFeatureNet(config)
    augment = None
    if recipe.data.augment:
        augment = affine_jitter(recipe.train.seed, background=BACKGROUND[recipe.data.source])
    task = ClassFeatureTask(net, heads=heads, augment=augment)
    ledger = CPULedger()
    train(task, LabelledImages(images, targets), recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[ledger])  # fmt: skip
    final_weights(run_dir, "features", net)
    net.eval()
    body = _class_metrics(net, recipe, images, heads, columns, data_dir)
    card = model_card(recipe.name, command=command, init_from=recipe.init_from,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                      body=body, recipe=asdict(replace(recipe, class_features=config)),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    return save_feature_net(net, run_dir / "model", card=card)


@torch.no_grad()
def _class_metrics(net: ClassFeatureNet, recipe: Recipe, images, heads, columns,
                   data_dir: Path | None) -> str:  # fmt: skip
    """The card's checks: each head's accuracy on the training pictures; on the held-out ones
    the heads whose classes training saw (held-out names are new), and FID against the
    held-out pictures of as many training pictures (the floor), and of blurred and noised
    held-out ones."""
    size = net.config.image_size
    x = torch.stack([images[i][0] for i in range(len(images))])
    lines = [f"## Metrics\n\nOn the {len(images)} training pictures, unmoved:"]
    for name, head, (truth, _) in zip(heads, net.logits(fit_images(x, size)), columns):
        lines.append(f"- {name} accuracy: {(head.argmax(1) == truth).float().mean():.4f}")
    folder = held_out_half(recipe, data_dir)
    if folder is None:
        return "\n".join(lines)
    held = ImageFolderDataset(folder, resolution=recipe.data.resolution)
    h = torch.stack([held[i][0] for i in range(len(held))])
    lines.append(f"\nOn the {len(held)} held-out pictures (names no training run saw):")
    for name, head, (_, classes) in zip(heads, net.logits(fit_images(h, size)), columns):
        truth = labels(held, name)
        index = {v: k for k, v in enumerate(classes)}
        known = [k for k, value in enumerate(truth) if value in index]
        if known:
            right = sum(int(head[k].argmax()) == index[truth[k]] for k in known)
            lines.append(f"- {name} accuracy: {right / len(known):.4f} ({len(known)} pictures)")
    checks = feature_checks(Resized(net, size), held=h, train=x)
    lines.append(f"\nFID in these features against the {len(h)} held-out pictures, of as many:")
    lines += [f"- {what}: {fid:.4g}" for what, fid in checks.items()]
    return "\n".join(lines)
