"""The arena: several text-to-image entrants on the same prompts and seeds, judged in pairs.

DrawBench asks raters two questions of each pair of images: which matches the prompt better
(alignment) and which looks more real (fidelity). Here alignment is the suite's judge
(``eval/arena_suites.py``: the shapes judge, the digit judge, an emoji CLIP's name retrieval; a
pass beats a fail; two passes or two fails tie) and fidelity is the k-NN realism of each image's
features against the suite's real pictures (``fid.knn_realism``; the higher wins). Each question
gets Bradley-Terry ratings with bootstrap intervals over prompts, and win rates per category.
"""

from __future__ import annotations

import itertools
import textwrap
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from atelier.data.base import array_to_tensor
from atelier.eval.arena_suites import ArenaSuite
from atelier.eval.bradley_terry import bootstrap_ratings
from atelier.eval.fid import FeatureExtractor, extract, knn_realism
from atelier.eval.grid import Tile, labelled_grid
from atelier.eval.shapes_bench import Judged
from atelier.pipelines.rerank import TextToImageCall

QUESTIONS = ("alignment", "fidelity")


@dataclass(frozen=True)
class Entrant:
    """A named pipeline with its own sampling options."""

    name: str
    pipe: TextToImageCall
    options: Any


@dataclass
class Showing:
    """One entrant's images: verdicts, realism scores and (small) images, in job order."""

    name: str
    judged: list[Judged] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    realism: np.ndarray | None = None
    seconds_per_image: float = 0.0


@dataclass(frozen=True)
class Rating:
    elo: float
    low: float
    high: float


@dataclass(frozen=True)
class ArenaResult:
    entrants: list[str]
    ratings: dict[str, dict[str, Rating]]  # question -> entrant -> Rating
    win_rates: dict[str, dict[str, dict[str, float]]]  # question -> "A vs B" -> category -> rate
    accuracy: dict[str, float]  # entrant -> judge pass rate
    mean_realism: dict[str, float]
    seconds_per_image: dict[str, float]
    showings: list[Showing]


def _features(images: list[Image.Image], extractor: FeatureExtractor) -> torch.Tensor:
    x = torch.stack([array_to_tensor(np.asarray(im.convert("RGB"))) for im in images])
    return extract(extractor, x)


def _show(entrant: Entrant, suite: ArenaSuite, seed: int, *, batch: int, progress: bool,
          show: Showing) -> float:  # fmt: skip
    """Draw and judge every prompt of ``suite`` at ``seed`` into ``show``; seconds per image."""
    drawing = 0.0
    prompts = suite.prompts
    for start in tqdm(range(0, len(prompts), batch), desc=entrant.name, disable=not progress):
        chunk = prompts[start : start + batch]
        began = time.perf_counter()
        images = entrant.pipe([p.prompt for p in chunk], seeds=[seed] * len(chunk),
                              options=entrant.options)  # fmt: skip
        drawing += time.perf_counter() - began
        for p, image, (passed, reasons) in zip(chunk, images, suite.judge(chunk, images)):
            show.judged.append(Judged(p.id, p.prompt, p.category, p.split, seed, passed, reasons))
            show.images.append(image)
    return drawing / max(len(prompts), 1)


def run_arena(
    entrants: Sequence[Entrant],
    suite: ArenaSuite,
    *,
    seeds: Sequence[int],
    n_boot: int = 500,
    batch: int = 16,
    progress: bool = True,
) -> ArenaResult:
    """Generate every (prompt, seed) of ``suite`` with every entrant, judge each image with the
    suite's judge, then rate the entrants on both questions."""
    if len(entrants) < 2:
        raise ValueError("an arena needs at least two entrants")
    names = [e.name for e in entrants]
    if len(set(names)) != len(names):
        raise ValueError(f"entrant names must differ, got {names}")
    real = extract(suite.extractor, suite.real_images)
    showings = []
    for entrant in entrants:
        show = Showing(entrant.name)
        for seed in seeds:
            sec = _show(entrant, suite, seed, batch=batch, progress=progress, show=show)
            show.seconds_per_image += sec / len(seeds)
        show.realism = knn_realism(real, _features(show.images, suite.extractor)).numpy()
        showings.append(show)

    n_jobs = len(showings[0].judged)
    by_prompt: dict[str, dict[str, list]] = {q: defaultdict(list) for q in QUESTIONS}
    wins: dict[str, dict[str, dict[str, list[float]]]] = {q: {} for q in QUESTIONS}
    for (a, sa), (b, sb) in itertools.combinations(enumerate(showings), 2):
        pair = f"{sa.name} vs {sb.name}"
        for q in QUESTIONS:
            wins[q][pair] = defaultdict(list)
        for k in range(n_jobs):
            ja, jb = sa.judged[k], sb.judged[k]
            assert (ja.id, ja.seed) == (jb.id, jb.seed)  # same prompts and seeds for everyone
            align = 0.5 if ja.passed == jb.passed else float(ja.passed)
            ra, rb = sa.realism[k], sb.realism[k]
            fidelity = 0.5 if ra == rb else float(ra > rb)
            for q, score in (("alignment", align), ("fidelity", fidelity)):
                by_prompt[q][ja.id].append((a, b, score))
                wins[q][pair][ja.category].append(score)
                wins[q][pair]["all"].append(score)
    ratings = {}
    for q in QUESTIONS:
        elo, low, high = bootstrap_ratings(list(by_prompt[q].values()), len(showings),
                                           n_boot=n_boot)  # fmt: skip
        ratings[q] = {s.name: Rating(float(e), float(lo), float(hi))
                      for s, e, lo, hi in zip(showings, elo, low, high)}  # fmt: skip
    return ArenaResult(
        entrants=names,
        ratings=ratings,
        win_rates={
            q: {
                pair: {c: float(np.mean(v)) for c, v in cats.items()}
                for pair, cats in wins[q].items()
            }
            for q in QUESTIONS
        },  # fmt: skip
        accuracy={s.name: float(np.mean([j.passed for j in s.judged])) for s in showings},
        mean_realism={s.name: float(np.mean(s.realism)) for s in showings},
        seconds_per_image={s.name: s.seconds_per_image for s in showings},
        showings=showings,
    )


def format_arena(result: ArenaResult) -> str:
    """Markdown tables: ratings per question, then win rates per pair."""
    lines = ["| entrant | accuracy | alignment Elo [95%] | fidelity Elo [95%] | s/image |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in result.entrants:
        a, f = result.ratings["alignment"][name], result.ratings["fidelity"][name]
        lines.append(
            f"| {name} | {result.accuracy[name]:.3f} | {a.elo:.0f} [{a.low:.0f}, {a.high:.0f}] "
            f"| {f.elo:.0f} [{f.low:.0f}, {f.high:.0f}] | {result.seconds_per_image[name]:.3f} |"
        )
    for q in QUESTIONS:
        pairs = result.win_rates[q]
        categories = sorted({c for cats in pairs.values() for c in cats} - {"all"}) + ["all"]
        lines += ["", f"{q}: win rate of the first entrant (ties count half)", "",
                  "| pair | " + " | ".join(categories) + " |",
                  "|---|" + "---|" * len(categories)]  # fmt: skip
        for pair, cats in pairs.items():
            cells = [f"{cats[c]:.2f}" if c in cats else "-" for c in categories]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arena_html(result: ArenaResult, *, per_category: int = 4) -> str:
    """The arena as a self-contained page: ratings, win rates and images side by side."""
    from atelier.eval.html import escape, figure, page, table

    rows = [
        [n, f"{result.accuracy[n]:.3f}"]
        + [f"{result.ratings[q][n].elo:.0f} [{result.ratings[q][n].low:.0f}, "
           f"{result.ratings[q][n].high:.0f}]" for q in QUESTIONS]
        + [f"{result.mean_realism[n]:.3f}", f"{result.seconds_per_image[n]:.3f}"]
        for n in result.entrants
    ]  # fmt: skip
    sections = [
        "<h2>Bradley-Terry ratings (Elo scale, 95% bootstrap over prompts)</h2>",
        table(
            ["entrant", "judge accuracy", "alignment", "fidelity", "mean realism", "s/image"], rows
        ),  # fmt: skip
    ]
    for q in QUESTIONS:
        pairs = result.win_rates[q]
        cats = sorted({c for v in pairs.values() for c in v} - {"all"}) + ["all"]
        sections.append(f"<h2>{q}: win rate of the first entrant (ties half)</h2>")
        win_rows = [
            [p, *(f"{v[c]:.2f}" if c in v else "-" for c in cats)] for p, v in pairs.items()
        ]
        sections.append(table(["pair", *cats], win_rows))
    first = result.showings[0].judged
    categories = list(dict.fromkeys(j.category for j in first))
    for category in categories:
        jobs = [k for k, j in enumerate(first) if j.category == category][:per_category]
        sections.append(f"<h2>{escape(category)}</h2>")
        for k in jobs:
            cells = "".join(
                figure(s.images[k], f"{s.name}", passed=s.judged[k].passed) for s in result.showings
            )
            sections.append(
                f"<div><p>{escape(first[k].prompt)} (seed {first[k].seed})</p>{cells}</div>"
            )
    return page("atelier arena", sections)


def arena_grid(result: ArenaResult, *, per_category: int = 1) -> Image.Image:
    """The pairs the arena judged as a labelled PNG: a row per (prompt, seed), its first
    ``per_category`` of each category, labelled with category and prompt; a column per
    entrant, each tile under the entrant's name, verdict and realism, framed green or red."""
    first = result.showings[0].judged
    categories = list(dict.fromkeys(j.category for j in first))
    by_category = {c: [k for k, j in enumerate(first) if j.category == c] for c in categories}
    jobs = [k for c in categories for k in by_category[c][:per_category]]
    tiles, labels = [], []
    for k in jobs:
        for s in result.showings:
            verdict = "PASS" if s.judged[k].passed else "FAIL"
            realism = f" · realism {s.realism[k]:.2f}" if s.realism is not None else ""
            tiles.append(Tile(s.images[k], (s.name, verdict + realism), s.judged[k].passed))
        prompt = textwrap.wrap(first[k].prompt, 24)
        labels.append("\n".join([first[k].category, *prompt, f"seed {first[k].seed}"]))
    title = "atelier arena: " + ", ".join(result.entrants)
    return labelled_grid(tiles, cols=len(result.showings), row_labels=labels, title=title)
