"""Scores of a digits model that a program computes: the share of generated images the digit
classifier (``atelier train mnist-classifier``) reads as the digit asked for, per digit, and FID
against the held-out real digits in the classifier's feature space.

Images come as a generator makes them, (B, 3, H, W) or (B, 1, H, W) in [-1, 1] with the ink
bright, as MNIST's; they are averaged to gray and resized to the classifier's side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from atelier.eval.fid import FeatureExtractor, FeatureStats, extract, frechet_distance
from atelier.models.digit_classifier import N_DIGITS, DigitClassifier


def classifier_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3 or 1, H, W) in [-1, 1] -> the classifier's (B, 1, size, size), antialiased."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 3, H, W) or (B, 1, H, W) images, got {tuple(images.shape)}")
    gray = images.float().mean(1, keepdim=True)
    if gray.shape[-2:] == (size, size):
        return gray
    return F.interpolate(gray, size=(size, size), mode="bilinear", antialias=True)


@dataclass(frozen=True)
class DigitScores:
    """``per_digit[d]``: the share of the images asked to show d that the classifier reads as
    d (None where no image asked for d); ``accuracy`` over all images; ``confusion[a][r]``:
    how many asked for a were read as r."""

    per_digit: dict[int, float | None]
    accuracy: float
    confusion: list[list[int]]

    def table(self) -> str:
        """A Markdown table: digit, images, share read as it."""
        rows = ["| digit | images | read as asked |", "|---|---|---|"]
        for digit, share in self.per_digit.items():
            n = sum(self.confusion[digit])
            rows.append(f"| {digit} | {n} | {'-' if share is None else f'{share:.3f}'} |")
        total = sum(map(sum, self.confusion))
        rows.append(f"| all | {total} | {self.accuracy:.4f} |")
        return "\n".join(rows)


@torch.no_grad()
def read_digits_of(images: torch.Tensor, *, classifier: DigitClassifier,
                   batch: int = 256) -> torch.Tensor:  # fmt: skip
    """(B,) the digit the classifier reads in each image."""
    classifier.eval()
    size = classifier.config.image_size
    return torch.cat([classifier(classifier_input(images[i : i + batch], size)).argmax(1)
                      for i in range(0, len(images), batch)])  # fmt: skip


def judge_digits(images: torch.Tensor, digits: torch.Tensor | list[int], *,
                 classifier: DigitClassifier) -> DigitScores:  # fmt: skip
    """How often ``classifier`` reads each image as the digit it was asked to show."""
    asked = torch.as_tensor(digits, dtype=torch.long)
    if asked.shape != (len(images),):
        raise ValueError(f"need one digit per image: {len(images)} images, {asked.shape} digits")
    if len(asked) and (asked.min() < 0 or asked.max() >= N_DIGITS):
        raise ValueError("digits must be in 0..9")
    read = read_digits_of(images, classifier=classifier)
    confusion = torch.zeros(N_DIGITS, N_DIGITS, dtype=torch.long)
    confusion.index_put_((asked, read), torch.ones_like(asked), accumulate=True)
    per_digit = {}
    for d in range(N_DIGITS):
        n = int(confusion[d].sum())
        per_digit[d] = float(confusion[d, d]) / n if n else None
    accuracy = float((read == asked).float().mean()) if len(asked) else 0.0
    return DigitScores(per_digit, accuracy, confusion.tolist())


def digit_features(classifier: DigitClassifier) -> FeatureExtractor:
    """The classifier's penultimate layer as a feature extractor of any-size images."""
    size = classifier.config.image_size

    def features(images: torch.Tensor) -> torch.Tensor:
        return classifier.features(classifier_input(images, size))  # (B, F)

    return features


def digits_fid(generated: torch.Tensor, real: torch.Tensor, *,
               classifier: DigitClassifier) -> float:  # fmt: skip
    """FID between generated and real digits (say the held-out ones) in the classifier's
    feature space; comparable only between runs judged by the same classifier."""
    classifier.eval()
    extractor = digit_features(classifier)
    return frechet_distance(FeatureStats.of(extract(extractor, generated)),
                            FeatureStats.of(extract(extractor, real)))  # fmt: skip


# Phrasings no training caption uses (data/mnist.py's TEMPLATES are the seen ones): whether the
# model reads the digit, not a memorised sentence.
HELD_OUT_TEMPLATES = (
    "a drawing of the number {digit}",
    "the numeral {word}, handwritten",
    "handwritten digit: {word}",
)


@dataclass(frozen=True)
class DigitPrompt:
    """One prompt of the digits suite: the digit it asks for and whether its phrasing is one of
    the training captions' (``seen``) or not (``held_out``)."""

    id: str
    prompt: str
    digit: int
    split: str


def digit_prompts() -> list[DigitPrompt]:
    """Every digit in every seen and held-out phrasing: 10 x (6 + 3) prompts, digit by digit."""
    from atelier.data.mnist import TEMPLATES, WORDS

    out = []
    for digit in range(N_DIGITS):
        for split, templates in (("seen", TEMPLATES), ("held_out", HELD_OUT_TEMPLATES)):
            for k, template in enumerate(templates):
                text = template.format(digit=digit, word=WORDS[digit])
                out.append(DigitPrompt(f"{digit}-{split}-{k}", text, digit, split))
    return out
