"""Sweeps over sampling settings, as AUTOMATIC1111's X/Y/Z plot, with a metric in every cell.

An axis is ``name=v1,v2,...`` over any option of the model's kind: its options dataclass
(``SamplingOptions`` for diffusion: ``guidance``, ``steps``, ``sampler``, ...; a DALL-E model's
``temperature``, ``top_k``, ``top_p``, ``guidance``; a MaskGIT model's ``steps``,
``temperature``, ``guidance``, ``choice_temperature``, ``schedule``), each value typed and
checked as a command's ``--option`` is (``kinds/base.with_options``). Every cell generates the
same prompts with the same seeds, judges each image, and records accuracy per split, the
network passes per image (NFE: samplers differ in evaluations per step, a token model makes one
pass per token or step) and seconds per image, so cells compare fairly.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from atelier.eval.grid import Tile, labelled_grid
from atelier.eval.shapes_bench import Accuracy, Judged, generate_and_judge, summarize
from atelier.kinds.base import TextToImage, network_evaluations, option_specs, with_options
from atelier.shapes.bench import BenchPrompt


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]


def parse_axis(text: str, defaults: Any, *, who: str = "this model") -> Axis:
    """``"guidance=1,2,4"`` -> Axis("guidance", (1.0, 2.0, 4.0)): the name must be a field of
    ``defaults`` (a model's options, of its kind's dataclass), each value typed and checked
    against it; ``who`` names the model in errors."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not raw.strip():
        raise ValueError(f"axis {text!r} is not name=v1,v2,... (e.g. guidance=1,2,4,8)")
    sweepable = [spec.name for spec in option_specs(type(defaults))]
    if name not in sweepable:
        raise ValueError(f"cannot sweep {name!r}; sweepable for {who}: {', '.join(sweepable)}")
    values: list[Any] = []
    for item in (v.strip() for v in raw.split(",")):
        try:
            options = with_options(defaults, {name: item}, who=who)
        except ValueError as err:
            raise ValueError(f"axis {name}: {item!r} is not a valid {name} value ({err})") from None
        values.append(getattr(options, name))
    return Axis(name, tuple(values))


@dataclass(frozen=True)
class Cell:
    """One combination of axis values and what it measured."""

    settings: dict[str, Any]
    options: Any  # the model's kind's options dataclass
    nfe: int | None  # None: the model's kind does not count its network passes
    seconds_per_image: float
    accuracy: dict[str, Accuracy]  # split ("seen", "held_out", "all") -> Accuracy
    by_category: dict[str, dict[str, Accuracy]]
    results: tuple[Judged, ...]
    images: tuple[Image.Image, ...] = ()  # the first ``keep`` images, for grids

    def row(self) -> dict[str, Any]:
        """A flat record for CSV and JSON."""
        out: dict[str, Any] = dict(self.settings)
        out.update({f"opt_{k}": v for k, v in dataclasses.asdict(self.options).items()})
        out["nfe"] = self.nfe
        out["seconds_per_image"] = round(self.seconds_per_image, 4)
        for split, acc in self.accuracy.items():
            out[f"acc_{split}"] = round(acc.accuracy, 4)
            out[f"acc_{split}_low"] = round(acc.low, 4)
            out[f"acc_{split}_high"] = round(acc.high, 4)
        return out


def run_sweep(
    model: TextToImage,
    prompts: Sequence[BenchPrompt],
    axes: Sequence[Axis],
    *,
    base: Any = None,
    seeds: Sequence[int] = (0,),
    keep: int = 8,
    progress: bool = True,
) -> list[Cell]:
    """Every combination of ``axes`` (the last varies fastest) over ``base`` options (None:
    the model's defaults)."""
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"each setting may be swept on one axis only, got {names}")
    if not seeds:
        raise ValueError("a sweep needs at least one seed")
    base = model.defaults if base is None else base
    cells = []
    for combo in itertools.product(*(a.values for a in axes)):
        settings = dict(zip(names, combo))
        options = replace(base, **settings)
        results: list[Judged] = []
        kept: list[Image.Image] = []
        seconds = 0.0
        for s in seeds:
            judged, sec = generate_and_judge(
                model, prompts, options=options, seed=s, progress=progress,
                on_image=lambda _, im, kept=kept: kept.append(im) if len(kept) < keep else None,
            )  # fmt: skip
            results += judged
            seconds += sec / len(seeds)
        table = summarize(results)
        cells.append(
            Cell(settings, options, network_evaluations(model, options), seconds,
                 dict(table["overall"]),
                 {c: dict(v) for c, v in table.items()}, tuple(results), tuple(kept))
        )  # fmt: skip
    return cells


def format_cells(cells: Sequence[Cell]) -> str:
    """A markdown table: settings, NFE, s/image, accuracy seen / held-out / all."""
    if not cells:
        return ""
    names = list(cells[0].settings)
    head = names + ["NFE", "s/image", "seen", "held-out", "all"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        accs = [c.accuracy.get(s) for s in ("seen", "held_out", "all")]
        lines.append(
            "| " + " | ".join(
                [str(c.settings[n]) for n in names]
                + [_count(c.nfe), f"{c.seconds_per_image:.3f}"]
                + [f"{a.accuracy:.3f}" if a else "-" for a in accs]
            ) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def _count(nfe: int | None) -> str:
    return "-" if nfe is None else str(nfe)


def grid_png(cells: Sequence[Cell], *, title: str | None = None) -> Image.Image:
    """One row per cell holding its kept images side by side (cells in table order), labelled
    as an X/Y plot: each row by its settings and accuracy, each tile by its prompt and the
    judge's verdict (framed green or red)."""
    kept = [c for c in cells if c.images]
    if not kept:
        raise ValueError("no cell kept any image")
    cols = max(len(c.images) for c in kept)
    tiles, labels = [], []
    for c in kept:
        for image, judged in zip(c.images, c.results):
            verdict = "PASS" if judged.passed else "FAIL"
            tiles.append(Tile(image, (judged.prompt, f"{verdict} · seed {judged.seed}"),
                              judged.passed))  # fmt: skip
        blank = np.full_like(np.asarray(c.images[0].convert("RGB")), 255)
        tiles += [Tile(blank)] * (cols - len(c.images))
        settings = [f"{k}={v}" for k, v in c.settings.items()]
        score = c.accuracy.get("all")
        labels.append("\n".join(settings + ([f"all {score.accuracy:.2f}"] if score else [])))
    return labelled_grid(tiles, cols=cols, row_labels=labels, title=title)


def heatmaps(cells: Sequence[Cell], axes: Sequence[Axis], *, metric: str = "all"):
    """A matplotlib figure of accuracy heatmaps: x against y, one panel per z value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = axes[0]
    y = axes[1] if len(axes) > 1 else Axis("-", ("-",))
    z = axes[2] if len(axes) > 2 else Axis("-", ("-",))
    size = (1.2 + 1.1 * len(x.values) * len(z.values), 1.2 + 0.6 * len(y.values))
    fig, panels = plt.subplots(1, len(z.values), figsize=size, squeeze=False)
    lookup = {tuple(c.settings.get(a.name, "-") for a in (x, y, z)): c for c in cells}
    for k, zv in enumerate(z.values):
        grid = np.array([[lookup[(xv, yv, zv)].accuracy[metric].accuracy for xv in x.values]
                         for yv in y.values])  # fmt: skip
        ax = panels[0][k]
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(x.values)), [str(v) for v in x.values])
        ax.set_yticks(range(len(y.values)), [str(v) for v in y.values])
        ax.set_xlabel(x.name)
        ax.set_ylabel(y.name)
        ax.set_title(f"{z.name}={zv}" if z.name != "-" else f"accuracy ({metric})")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                    color="white" if value < 0.6 else "black", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig
