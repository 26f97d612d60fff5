"""Score a text-to-image pipeline on shapes-bench with the project's judge.

Every prompt is drawn ``samples`` times (seeds ``seed + k``), each image is judged strictly
against the prompt's spec, and accuracy is reported per category and split with a percentile
bootstrap confidence interval over prompts (Efron & Tibshirani 1993), beside the judge's own floor.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from atelier.pipelines.rerank import TextToImageCall
from atelier.shapes.bench import BenchPrompt
from atelier.shapes.judge import FoundObject, judge
from atelier.shapes.world import SceneSpec


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
    # What became of each asked object the image lacks (see :func:`missing_objects`).
    misses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accuracy:
    """Pass rate of a group of prompts with its 95% bootstrap interval."""

    accuracy: float
    low: float
    high: float
    images: int


MISS_KINDS = ("wrong shape, borrowed", "wrong shape", "wrong colour", "absent")


def missing_objects(spec: SceneSpec, found: Sequence[FoundObject]) -> tuple[str, ...]:
    """For each asked (colour, shape) the image lacks, what was drawn instead, one of
    :data:`MISS_KINDS`: an unasked object of the same colour and another shape (``"borrowed"``
    when that shape is one the prompt asks for elsewhere: a binding error), of the same shape
    and another colour, or nothing that explains it."""
    want = Counter((o.color, o.shape) for o in spec.objects)
    have = Counter((o.color, o.shape) for o in found)
    extra = have - want
    asked_shapes = {o.shape for o in spec.objects}
    out = []
    for (color, shape), n in sorted((want - have).items()):
        for _ in range(n):
            same_colour = [k for k in extra if k[0] == color and k[1] != shape and extra[k] > 0]
            same_shape = [k for k in extra if k[1] == shape and k[0] != color and extra[k] > 0]
            if same_colour:
                extra[same_colour[0]] -= 1
                borrowed = same_colour[0][1] in asked_shapes
                out.append(MISS_KINDS[0] if borrowed else MISS_KINDS[1])
            elif same_shape:
                extra[same_shape[0]] -= 1
                out.append(MISS_KINDS[2])
            else:
                out.append(MISS_KINDS[3])
    return tuple(out)


def miss_breakdown(results: Sequence[Judged]) -> str:
    """One line: how many asked objects were missing and what was drawn instead."""
    counts = Counter(kind for r in results for kind in r.misses)
    total = sum(counts.values())
    parts = ", ".join(f"{kind} {counts[kind]}" for kind in MISS_KINDS)
    return f"asked objects missing: {total} ({parts})"


def generate_and_judge(
    pipe: TextToImageCall,
    suite: Sequence[BenchPrompt],
    *,
    options: Any,
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
                bp.id, bp.prompt, bp.category, bp.split, s, verdict.passed,
                tuple(verdict.reasons), missing_objects(bp.spec, verdict.objects),
            )  # fmt: skip
            out.append(judged)
            if on_image is not None:
                on_image(judged, image)
    return out, (time.perf_counter() - began) / max(len(jobs), 1)


def bootstrap(
    passes_by_prompt: list[list[bool]] | list[list[float]], *, n_boot: int = 2000, seed: int = 0
) -> Accuracy:
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


def _groups(results: Sequence[Judged], value: Callable[[Judged], float]):
    """``{(category, split): {prompt id: [value, ...]}}`` with ``overall`` and ``all`` rows."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        for key in (
            (r.category, r.split),
            ("overall", r.split),
            (r.category, "all"),
            ("overall", "all"),
        ):
            groups[key][r.id].append(value(r))
    return groups


def summarize(results: Sequence[Judged]) -> dict[str, dict[str, Accuracy]]:
    """``{category: {split: Accuracy}}`` plus ``overall`` per split and ``all``."""
    table: dict[str, dict[str, Accuracy]] = defaultdict(dict)
    for (category, split), by_prompt in _groups(results, lambda r: r.passed).items():
        table[category][split] = bootstrap(list(by_prompt.values()))
    return dict(table)


def paired_difference(
    before: Sequence[Judged], after: Sequence[Judged]
) -> dict[str, dict[str, Accuracy]]:
    """``after`` minus ``before``, image by image, on the same prompts and seeds: per category
    and split, the mean difference in pass rate with a 95% bootstrap interval over prompts (a
    paired test: each prompt's difficulty cancels). Raises ValueError unless both judged
    exactly the same (prompt, seed) pairs."""
    first = {(r.id, r.seed): r for r in before}
    second = {(r.id, r.seed): r for r in after}
    if len(first) != len(before) or len(second) != len(after):
        raise ValueError("an eval lists the same prompt and seed twice")
    if first.keys() != second.keys():
        only = len(first.keys() - second.keys()), len(second.keys() - first.keys())
        raise ValueError(
            f"the evals judged different images ({only[0]} (prompt, seed) pairs only in the "
            f"first, {only[1]} only in the second); compare evals with the same suite, "
            "--samples and --seed"
        )

    def gain(r: Judged) -> float:
        return float(second[(r.id, r.seed)].passed) - float(r.passed)

    table: dict[str, dict[str, Accuracy]] = defaultdict(dict)
    for (category, split), by_prompt in _groups(before, gain).items():
        table[category][split] = bootstrap(list(by_prompt.values()))
    return dict(table)


def format_table(table: dict[str, dict[str, Accuracy]], *, signed: bool = False,
                 rows: str = "category") -> str:  # fmt: skip
    """A plain-text table: accuracy [95% CI] per category (``rows`` names them) and split
    (``signed``: differences)."""
    lines = [f"{rows:<18} {'seen':>20} {'held_out':>20} {'all':>20}"]
    order = [c for c in table if c != "overall"] + ["overall"]
    f = "+.2f" if signed else ".2f"
    for category in order:
        cells = []
        for split in ("seen", "held_out", "all"):
            a = table[category].get(split)
            cells.append(f"{a.accuracy:{f}} [{a.low:{f}},{a.high:{f}}]" if a else "-")
        lines.append(f"{category:<18} " + " ".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def to_json(table: dict[str, dict[str, Accuracy]]) -> dict:
    return {c: {s: asdict(a) for s, a in splits.items()} for c, splits in table.items()}
