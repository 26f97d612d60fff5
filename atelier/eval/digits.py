"""Scores of a digits model that a program computes: the share of generated images the digit
classifier (``atelier train mnist-classifier``) reads as the digit asked for, per digit, and FID
against the held-out real digits in the classifier's feature space.

Images come as a generator makes them, (B, 3, H, W) or (B, 1, H, W) in [-1, 1] with the ink
bright, as MNIST's; they are averaged to gray and resized to the classifier's side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from atelier.eval.fid import FeatureExtractor, FeatureStats, extract, frechet_distance
from atelier.eval.shapes_bench import Accuracy, bootstrap
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

    @property
    def category(self) -> str:
        """What the arena groups the prompt's win rates by: its digit."""
        return f"digit {self.digit}"


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


@dataclass(frozen=True)
class DrawnDigit:
    """One generated image of the digits suite: its prompt, seed, the digit asked and the
    digit the judge read."""

    id: str
    prompt: str
    digit: int
    split: str
    seed: int
    read: int
    passed: bool


def judge_drawn(prompts: Sequence[DigitPrompt], seeds: Sequence[int], images: torch.Tensor, *,
                classifier: DigitClassifier) -> list[DrawnDigit]:  # fmt: skip
    """Each image (drawn for ``prompts[i]`` at ``seeds[i]``) as the judge reads it."""
    if not len(prompts) == len(seeds) == len(images):
        raise ValueError("give one prompt and one seed per image")
    read = read_digits_of(images, classifier=classifier).tolist()
    return [DrawnDigit(p.id, p.prompt, p.digit, p.split, s, r, r == p.digit)
            for p, s, r in zip(prompts, seeds, read)]  # fmt: skip


def digit_table(drawn: Sequence[DrawnDigit]) -> dict[str, dict[str, Accuracy]]:
    """``{digit or "overall": {split or "all": Accuracy}}``: the share read as asked, with a 95%
    percentile bootstrap interval over images (each image an independent draw)."""
    groups: dict[tuple[str, str], list[list[bool]]] = defaultdict(list)
    for d in drawn:
        for key in ((str(d.digit), d.split), (str(d.digit), "all"), ("overall", d.split),
                    ("overall", "all")):  # fmt: skip
            groups[key].append([d.passed])
    table: dict[str, dict[str, Accuracy]] = defaultdict(dict)
    for (row, split), passes in sorted(groups.items(), key=lambda kv: kv[0][0] == "overall"):
        table[row][split] = bootstrap(passes)
    return dict(table)


def digits_html(title: str, table: dict[str, dict[str, Accuracy]], drawn: Sequence[DrawnDigit],
                images: Sequence[Image.Image], *, sections: Sequence[str],
                per_digit: int = 18) -> str:  # fmt: skip
    """The digits report: ``sections`` (settings, distribution metrics), the accuracy table,
    then each digit's images framed green (read as asked) or red, captioned with what was
    read."""
    from atelier.eval.html import escape, figure, page
    from atelier.eval.html import table as html_table

    rows = []
    for digit in [k for k in table if k != "overall"] + ["overall"]:
        cells = [digit]
        for split in ("seen", "held_out", "all"):
            a = table[digit].get(split)
            cells.append(f"{a.accuracy:.3f} [{a.low:.3f}, {a.high:.3f}] (n={a.images})"
                         if a else "-")  # fmt: skip
        rows.append(cells)
    header = ["digit", "seen phrasings", "held-out phrasings", "all"]
    parts = [*sections, "<h2>Read as asked by the digit judge [95% bootstrap interval]</h2>",
             html_table(header, rows)]  # fmt: skip
    for digit in range(N_DIGITS):
        picks = [k for k, d in enumerate(drawn) if d.digit == digit][:per_digit]
        shown = "".join(
            figure(images[k], f"{drawn[k].prompt} (seed {drawn[k].seed}): read {drawn[k].read}",
                   passed=drawn[k].passed)
            for k in picks
        )  # fmt: skip
        if picks:
            parts.append(f"<h2>{escape(digit)}</h2><div>{shown}</div>")
    return page(title, parts)


def digits_report(report: dict, jobs: Sequence[tuple[DigitPrompt, int]],
                  images: Sequence[Image.Image], *, classifier: DigitClassifier, folder: Path,
                  settings: dict, metrics: bool = True) -> tuple[str, str]:  # fmt: skip
    """Judge the drawn digits, measure FID/KID in the judge's features against the held-out
    digits of ``folder`` (a built MNIST set) beside the floor, and add all of it to ``report``;
    returns the plain-text summary and the HTML page."""
    from atelier.data.real import half
    from atelier.eval.html import escape
    from atelier.eval.html import table as html_table
    from atelier.eval.real_sets import (
        METRIC_HEADER,
        distribution_lines,
        folder_tensors,
        metric_cells,
        real_distribution,
        tensors,
    )
    from atelier.eval.report import metrics_json
    from atelier.eval.shapes_bench import format_table, to_json

    x = tensors(images)
    drawn = judge_drawn([p for p, _ in jobs], [s for _, s in jobs], x, classifier=classifier)
    table = digit_table(drawn)
    lines = [format_table(table, rows="digit")]
    measured = []
    real = {part: folder_tensors(half(folder, part), 32) for part in ("heldout", "train")}
    if metrics and len(drawn) >= 4 and len(real["heldout"]) >= 4:
        measured.append(real_distribution("digit judge features", digit_features(classifier), x,
                                          held=real["heldout"], train=real["train"]))  # fmt: skip
        lines += distribution_lines(measured, f"{len(real['heldout'])} held-out digits")
    report |= {"accuracy": to_json(table), "distribution": metrics_json(measured),
               "images": [asdict(d) for d in drawn]}  # fmt: skip
    sections = [f"<p>{escape(', '.join(f'{k}: {v}' for k, v in settings.items()))}; "
                f"{report['seconds_per_image']:.3f} s per image</p>"]  # fmt: skip
    if measured:
        sections.append("<h2>Against the held-out digits (floor: as many training digits)</h2>")
        sections.append(html_table(METRIC_HEADER, [metric_cells(m) for m in measured]))
    page = digits_html(f"{report['model']} on the digits suite", table, drawn, images,
                       sections=sections)  # fmt: skip
    return "\n".join(lines), page
