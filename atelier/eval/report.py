"""What ``atelier eval`` measures beyond judge accuracy, and its self-contained HTML report.

For each feature extractor (the shapes feature network, the CLIP image tower): FID, KID and
improved precision/recall of the generated images against fresh real renders, each beside the
real-vs-real floor at the same sample count. With a CLIP: the mean CLIP score of the generated
images with their prompts, beside the same score of real renders with their true captions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from atelier.data.base import array_to_tensor
from atelier.eval.fid import (
    FeatureStats,
    extract,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)
from atelier.eval.grid import Tile, labelled_grid
from atelier.eval.reference import cached_features, real_floor, reference_dataset
from atelier.eval.shapes_bench import Accuracy, Judged


@dataclass(frozen=True)
class DistributionMetrics:
    extractor: str
    n: int
    fid: float
    kid: float
    precision: float
    recall: float
    fid_floor: float
    kid_floor: float


def images_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    return torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])


def distribution_metrics(
    name: str, extractor: nn.Module, images: Sequence[Image.Image]
) -> DistributionMetrics:
    """FID/KID/precision/recall of ``images`` against 2N fresh real renders at the same
    resolution, with the floor."""
    n = len(images)
    if n < 4:
        raise ValueError(f"distribution metrics need at least 4 images, got {n}")
    real = cached_features(extractor, reference_dataset(2 * n, images[0].width))
    fake = extract(extractor, images_to_tensor(images))
    g = torch.Generator().manual_seed(0)
    reals = real[:n]
    kid, _ = kernel_inception_distance(
        reals, fake, subsets=50, subset_size=min(n, 1000), generator=g
    )
    precision, recall = precision_recall(reals, fake)
    floor = real_floor(real, n)
    return DistributionMetrics(
        name, n, frechet_distance(FeatureStats.of(reals), FeatureStats.of(fake)), kid,
        precision, recall, floor.fid, floor.kid,
    )  # fmt: skip


def clip_score_pair(
    clip, images: Sequence[Image.Image], prompts: Sequence[str]
) -> tuple[float, float]:
    """Mean CLIP score of (image, prompt) pairs, and of as many real renders with captions."""
    from atelier.eval.clip_metrics import clip_scores

    generated = float(clip_scores(clip, images_to_tensor(images), list(prompts)).mean())
    data = reference_dataset(len(images), images[0].width)
    real = torch.stack([data[i][0] for i in range(len(data))])
    reference = float(clip_scores(clip, real, [data[i][1] for i in range(len(data))]).mean())
    return generated, reference


def eval_html(
    title: str,
    table: dict[str, dict[str, Accuracy]],
    judged: Sequence[Judged],
    images: Sequence[Image.Image],
    *,
    metrics: Sequence[DistributionMetrics] = (),
    clip_score: tuple[float, float] | None = None,
    seconds_per_image: float,
    settings: dict,
    per_category: int = 16,
) -> str:
    """The report page: settings, accuracy with intervals, distribution metrics with floors,
    then a grid per category with each image framed green (pass) or red (fail)."""
    from atelier.eval.html import escape, figure, page
    from atelier.eval.html import table as html_table

    rows = []
    for category in [c for c in table if c != "overall"] + ["overall"]:
        cells = [category]
        for split in ("seen", "held_out", "all"):
            a = table[category].get(split)
            cells.append(
                f"{a.accuracy:.3f} [{a.low:.3f}, {a.high:.3f}] (n={a.images})" if a else "-"
            )
        rows.append(cells)
    sections = [
        f"<p>{escape(', '.join(f'{k}: {v}' for k, v in settings.items()))}; "
        f"{seconds_per_image:.3f} s per image</p>",
        "<h2>shapes-bench accuracy [95% bootstrap interval]</h2>",
        html_table(["category", "seen", "held-out", "all"], rows),
    ]
    if metrics:
        sections.append("<h2>Distribution metrics (floor: two real sets of the same size)</h2>")
        sections.append(html_table(
            ["features", "n", "FID", "FID floor", "KID", "KID floor", "precision", "recall"],
            [[m.extractor, m.n, f"{m.fid:.3f}", f"{m.fid_floor:.3f}", f"{m.kid:.4f}",
              f"{m.kid_floor:.4f}", f"{m.precision:.3f}", f"{m.recall:.3f}"] for m in metrics],
        ))  # fmt: skip
    if clip_score is not None:
        sections.append(
            f"<h2>CLIP score</h2><p>generated {clip_score[0]:.2f}; real renders with their "
            f"captions {clip_score[1]:.2f}</p>"
        )
    for category in dict.fromkeys(j.category for j in judged):
        picks = [k for k, j in enumerate(judged) if j.category == category][:per_category]
        figures = "".join(
            figure(
                images[k], f"{judged[k].prompt} (seed {judged[k].seed})", passed=judged[k].passed
            )
            for k in picks
        )
        sections.append(f"<h2>{escape(category)}</h2><div>{figures}</div>")
    return page(title, sections)


def eval_grid(
    title: str,
    table: dict[str, dict[str, Accuracy]],
    judged: Sequence[Judged],
    images: Sequence[Image.Image],
    *,
    per_split: int = 2,
) -> Image.Image:
    """A labelled PNG of an eval: a row per category (labelled with its accuracy on seen and
    held-out prompts) of its first ``per_split`` seen and held-out images, each under its
    prompt and verdict and framed green (pass) or red (fail)."""
    categories = list(dict.fromkeys(j.category for j in judged))
    where = {(c, s): [] for c in categories for s in ("seen", "held_out")}
    for k, j in enumerate(judged):
        where.setdefault((j.category, j.split), []).append(k)
    rows = [where[c, "seen"][:per_split] + where[c, "held_out"][:per_split] for c in categories]
    cols = max(len(r) for r in rows)
    tiles, labels = [], []
    for category, picks in zip(categories, rows):
        for k in picks:
            j = judged[k]
            verdict = "PASS" if j.passed else "FAIL"
            split = j.split.replace("_", "-")
            tiles.append(Tile(images[k], (j.prompt, f"{verdict} · {split}, seed {j.seed}"),
                              j.passed))  # fmt: skip
        blank = Image.new("RGB", images[0].size, "white")
        tiles += [Tile(blank)] * (cols - len(picks))
        scores = [f"{name} {table[category][split].accuracy:.2f}"
                  for split, name in (("seen", "seen"), ("held_out", "held-out"))
                  if split in table.get(category, {})]  # fmt: skip
        labels.append("\n".join([category, *scores]))
    return labelled_grid(tiles, cols=cols, row_labels=labels, title=title)


def metrics_json(metrics: Sequence[DistributionMetrics]) -> list[dict]:
    return [asdict(m) for m in metrics]
