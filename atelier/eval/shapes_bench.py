"""Score a text-to-image pipeline on shapes-bench with the project's judge.

Every prompt is drawn ``samples`` times (seeds ``seed + k``), each image is judged strictly
against the prompt's spec, and accuracy is reported per category and split with a percentile
bootstrap confidence interval over prompts (Efron & Tibshirani 1993), beside the judge's own floor.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from atelier.pipelines.text2image import SamplingOptions, Text2Image
from atelier.shapes.bench import BenchPrompt
from atelier.shapes.judge import judge


@dataclass(frozen=True)
class Judged:
    """One generated image and the judge's verdict."""

    id: str
    prompt: str
    category: str
    split: str
    seed: int
    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Accuracy:
    """Pass rate of a group of prompts with its 95% bootstrap interval."""

    accuracy: float
    low: float
    high: float
    images: int


def generate_and_judge(
    pipe: Text2Image,
    suite: Sequence[BenchPrompt],
    *,
    options: SamplingOptions,
    samples: int = 1,
    seed: int = 0,
    batch: int = 16,
    progress: bool = True,
    on_image: Callable[[Judged, Image.Image], None] | None = None,
) -> tuple[list[Judged], float]:
    """Judge ``samples`` images per prompt; returns the verdicts and seconds per image.

    ``on_image(verdict, image)`` sees every image (reports keep thumbnails, arenas features).
    """
    jobs = [(bp, seed + k) for bp in suite for k in range(samples)]
    out: list[Judged] = []
    began = time.perf_counter()
    for start in tqdm(range(0, len(jobs), batch), desc="shapes-bench", disable=not progress):
        chunk = jobs[start : start + batch]
        images = pipe([bp.prompt for bp, _ in chunk], seeds=[s for _, s in chunk], options=options)
        for (bp, s), image in zip(chunk, images):
            verdict = judge(np.asarray(image), bp.spec)
            judged = Judged(
                bp.id, bp.prompt, bp.category, bp.split, s, verdict.passed, tuple(verdict.reasons)
            )
            out.append(judged)
            if on_image is not None:
                on_image(judged, image)
    return out, (time.perf_counter() - began) / max(len(jobs), 1)


def bootstrap(passes_by_prompt: list[list[bool]], *, n_boot: int = 2000, seed: int = 0) -> Accuracy:
    """Accuracy over prompts (each prompt's mean over its samples), resampling prompts."""
    per_prompt = np.array([np.mean(p) for p in passes_by_prompt])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_prompt), size=(n_boot, len(per_prompt)))
    means = per_prompt[idx].mean(axis=1)
    return Accuracy(
        float(per_prompt.mean()),
        float(np.percentile(means, 2.5)),
        float(np.percentile(means, 97.5)),
        sum(len(p) for p in passes_by_prompt),
    )


def summarize(results: Sequence[Judged]) -> dict[str, dict[str, Accuracy]]:
    """``{category: {split: Accuracy}}`` plus ``overall`` per split and ``all``."""
    groups: dict[tuple[str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        for key in (
            (r.category, r.split),
            ("overall", r.split),
            (r.category, "all"),
            ("overall", "all"),
        ):
            groups[key][r.id].append(r.passed)
    table: dict[str, dict[str, Accuracy]] = defaultdict(dict)
    for (category, split), by_prompt in groups.items():
        table[category][split] = bootstrap(list(by_prompt.values()))
    return dict(table)


def format_table(table: dict[str, dict[str, Accuracy]]) -> str:
    """A plain-text table: accuracy [95% CI] per category and split."""
    lines = [f"{'category':<18} {'seen':>20} {'held_out':>20} {'all':>20}"]
    order = [c for c in table if c != "overall"] + ["overall"]
    for category in order:
        cells = []
        for split in ("seen", "held_out", "all"):
            a = table[category].get(split)
            cells.append(f"{a.accuracy:.2f} [{a.low:.2f},{a.high:.2f}]" if a else "-")
        lines.append(f"{category:<18} " + " ".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def to_json(table: dict[str, dict[str, Accuracy]]) -> dict:
    return {c: {s: asdict(a) for s, a in splits.items()} for c, splits in table.items()}
