"""Scores of the emoji set that a trained CLIP gives: R-precision of names, zero-shot category
accuracy, and the emoji suite's prompts (``atelier eval --suite emoji``).

The folder ``atelier data emoji`` writes keeps each picture's ``name`` ("red apple") and
``category`` ("Food & Drink") in its ``metadata.jsonl``. Held-out names are those no training
run sees (with every skin tone of them), so a CLIP's R-precision on them says whether it reads
names it never learnt; chance is stated beside every score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image

from atelier.data.real import metadata_rows
from atelier.eval.clip_metrics import RPrecision, clip_scores, r_precision, zero_shot_probabilities
from atelier.models.clip import CLIP

SEEN_PROMPTS = 64


def category_label(category: str) -> str:
    """The text a category is classified by: its name, lower-case ("food & drink")."""
    return category.lower()


@dataclass(frozen=True)
class CategoryAccuracy:
    """Zero-shot category accuracy: over images (``accuracy``) and the mean of the categories'
    own accuracies (``balanced``), beside ``chance`` (1 / the categories present) and
    ``majority`` (the share of the most common category: what always naming it scores)."""

    accuracy: float
    balanced: float
    chance: float
    majority: float
    categories: int
    images: int


@torch.no_grad()
def category_accuracy(clip: CLIP, images: torch.Tensor,
                      categories: Sequence[str]) -> CategoryAccuracy:  # fmt: skip
    """Zero-shot classification of ``images`` among the categories present in ``categories``
    (one per image), each named by :func:`category_label`."""
    if len(images) != len(categories) or not len(categories):
        raise ValueError(f"need one category per image: {len(images)} images, "
                         f"{len(categories)} categories")  # fmt: skip
    present = sorted(set(categories))
    if len(present) < 2:
        raise ValueError("zero-shot category accuracy needs at least two categories")
    truth = torch.tensor([present.index(c) for c in categories])
    predicted = zero_shot_probabilities(clip, images, [category_label(c) for c in present])
    right = (predicted.argmax(-1) == truth).float()
    balanced = torch.stack([right[truth == k].mean() for k in range(len(present))]).mean()
    counts = Counter(categories)
    return CategoryAccuracy(float(right.mean()), float(balanced), 1 / len(present),
                            max(counts.values()) / len(categories), len(present),
                            len(categories))  # fmt: skip


@dataclass(frozen=True)
class EmojiPrompt:
    """One prompt of the emoji suite: a picture's caption, its name and category, and whether
    the name is one training saw (``seen``) or a held-out one (``held_out``)."""

    id: str
    prompt: str
    name: str
    category: str
    split: str


def emoji_prompts(folder: Path, *, seen: int = SEEN_PROMPTS) -> list[EmojiPrompt]:
    """The captions of every held-out picture of a built emoji folder (so the generated set
    mirrors the held-out pictures FID compares with), then ``seen`` training captions spread
    over the training half."""
    held = list(metadata_rows(Path(folder) / "heldout").values())
    train = list(metadata_rows(Path(folder) / "train").values())
    step = max(len(train) // max(seen, 1), 1)
    picked = train[::step][:seen]
    out = []
    for split, rows in (("held_out", held), ("seen", picked)):
        for row in rows:
            key = Path(row["file_name"]).stem
            out.append(EmojiPrompt(f"{split}-{key}", row["text"], row["name"], row["category"],
                                   split))  # fmt: skip
    return out


@dataclass(frozen=True)
class ClipReadings:
    """What a CLIP reads in one set of pictures: the mean CLIP score with their captions,
    R-precision of their names and, where given, zero-shot category accuracy."""

    images: int
    clip_score: float
    r_precision: RPrecision | None
    category: CategoryAccuracy | None


def clip_readings(clip: CLIP, images: torch.Tensor, prompts: Sequence[EmojiPrompt], *,
                  categories: bool = True) -> ClipReadings:  # fmt: skip
    """CLIP score with each prompt's caption, R-precision of its name among the set's names
    (100 candidates at most) and zero-shot category accuracy (``categories``), each where the
    set holds two names or categories at least."""
    score = float(clip_scores(clip, images, [p.prompt for p in prompts]).mean())
    names = [p.name for p in prompts]
    r = r_precision(clip, images, names) if len(set(names)) > 1 else None
    category = None
    if categories and len({p.category for p in prompts}) > 1:
        category = category_accuracy(clip, images, [p.category for p in prompts])
    return ClipReadings(len(prompts), score, r, category)


def readings_rows(readings: dict[str, ClipReadings]) -> list[list[str]]:
    """Table rows: the set, pictures, CLIP score, R-precision (chance), category accuracy,
    balanced (chance, always the commonest)."""
    rows = []
    for what, r in readings.items():
        c = r.category
        p = r.r_precision
        rows.append([
            what, str(r.images), f"{r.clip_score:.2f}",
            "-" if p is None else f"{p.value:.3f} ({p.chance:.3f} of {p.candidates})",
            "-" if c is None else f"{c.accuracy:.3f} ({c.majority:.3f})",
            "-" if c is None else f"{c.balanced:.3f} ({c.chance:.3f})",
        ])  # fmt: skip
    return rows


def _reading_line(r: ClipReadings) -> str:
    line = f"CLIP score {r.clip_score:.2f}"
    if r.r_precision is not None:
        p = r.r_precision
        line += f", R-precision {p.value:.3f} (chance {p.chance:.3f}, {p.candidates} names)"
    if r.category is not None:
        c = r.category
        line += (f", category {c.accuracy:.3f} (balanced {c.balanced:.3f}, chance "
                 f"{c.chance:.3f}; always the commonest {c.majority:.3f})")  # fmt: skip
    return f"{line}; {r.images} pictures"


READINGS_HEADER = ["pictures", "n", "CLIP score", "R-precision (chance of candidates)",
                   "category accuracy (always the commonest)",
                   "balanced category accuracy (chance)"]  # fmt: skip


def emoji_html(title: str, prompts: Sequence[EmojiPrompt], seeds: Sequence[int],
               images: Sequence[Image.Image], *, sections: Sequence[str],
               per_split: int = 48) -> str:  # fmt: skip
    """The emoji report: ``sections`` (settings, metrics), then drawn pictures of held-out and
    of seen names, each captioned with its name."""
    from atelier.eval.html import figure, page

    parts = list(sections)
    for split, heading in (("held_out", "Held-out names"), ("seen", "Seen names")):
        picks = [k for k, p in enumerate(prompts) if p.split == split][:per_split]
        shown = "".join(figure(images[k], f"{prompts[k].name} (seed {seeds[k]})") for k in picks)
        if picks:
            parts.append(f"<h2>{heading}</h2><div>{shown}</div>")
    return page(title, parts)


def emoji_report(report: dict, jobs: Sequence[tuple[EmojiPrompt, int]],
                 images: Sequence[Image.Image], *, folder: Path, settings: dict, features: str,
                 clip_model: str, metrics: bool = True) -> tuple[str, str]:  # fmt: skip
    """Measure the drawn emoji (``jobs``: prompt and seed of each image) against the held-out
    pictures of ``folder`` (a built emoji set): FID/KID/precision/recall of those drawn for
    held-out names in ``features``' and ``clip_model``'s image features beside the floor, and
    what ``clip_model`` reads in the drawn and the real pictures. A model that is not installed
    is skipped with a note in the summary. Adds everything to ``report``; returns the
    plain-text summary and the HTML page."""
    from atelier.data.real import half
    from atelier.eval.clip_metrics import CLIPImageFeatures
    from atelier.eval.fid import Resized
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
    from atelier.kinds.clip import load_clip
    from atelier.kinds.features import load_feature_net

    prompts, seeds = [p for p, _ in jobs], [s for _, s in jobs]
    x = tensors(images)
    held_k = [k for k, p in enumerate(prompts) if p.split == "held_out"]
    held_rows = metadata_rows(half(folder, "heldout"))
    real = {part: folder_tensors(half(folder, part), x.shape[-1]) for part in ("heldout", "train")}
    real_prompts = [EmojiPrompt(f"real-{k}", row["text"], row["name"], row["category"], "real")
                    for k, row in enumerate(held_rows.values())]  # fmt: skip
    lines, measured, notes = [], [], []
    extractors = []
    try:
        net = load_feature_net(features)
        extractors.append((features, Resized(net, net.config.image_size)))
    except (FileNotFoundError, ValueError) as err:
        notes.append(f"no {features} ({err}); its FID/KID skipped (atelier train emoji-features)")
    clip = None
    try:
        clip = load_clip(clip_model)
        extractors.append((f"{clip_model} image tower", CLIPImageFeatures(clip)))
    except (FileNotFoundError, ValueError) as err:
        notes.append(f"no {clip_model} ({err}); CLIP scores skipped (atelier train emoji-clip)")
    if metrics and len(held_k) >= 4 and len(real["heldout"]) >= 4:
        for name, extractor in extractors:
            measured.append(real_distribution(name, extractor, x[held_k], held=real["heldout"],
                                              train=real["train"]))  # fmt: skip
        lines += distribution_lines(measured, f"{len(real['heldout'])} held-out pictures")
    readings: dict[str, ClipReadings] = {}
    if clip is not None:
        for split, what in (("held_out", "drawn, held-out names"), ("seen", "drawn, seen names")):
            picks = [k for k, p in enumerate(prompts) if p.split == split]
            if picks:
                readings[what] = clip_readings(clip, x[picks], [prompts[k] for k in picks])
        readings["real held-out pictures"] = clip_readings(clip, real["heldout"], real_prompts)
        lines += [f"{what}: {_reading_line(r)}" for what, r in readings.items()]
    report |= {"distribution": metrics_json(measured), "notes": notes,
               "clip": {what: asdict(r) for what, r in readings.items()},
               "images": [{**asdict(p), "seed": s} for p, s in jobs]}  # fmt: skip
    sections = [f"<p>{escape(', '.join(f'{k}: {v}' for k, v in settings.items()))}; "
                f"{report['seconds_per_image']:.3f} s per image</p>"]  # fmt: skip
    sections += [f"<p>note: {escape(n)}</p>" for n in notes]
    if measured:
        sections += ["<h2>Drawn for held-out names, against the held-out pictures (floor: as "
                     "many training pictures)</h2>",
                     html_table(METRIC_HEADER, [metric_cells(m) for m in measured])]  # fmt: skip
    if readings:
        sections += [f"<h2>What {escape(clip_model)} reads</h2>",
                     html_table(READINGS_HEADER, readings_rows(readings))]  # fmt: skip
    page = emoji_html(f"{report['model']} on the emoji suite", prompts, seeds, images,
                      sections=sections)  # fmt: skip
    return "\n".join([*(f"note: {n}" for n in notes), *lines]), page
