"""The judge's floor: how often it passes fresh, correct renders of the suite's own specs.

A generated image can only score as well as the judge reads true pictures, so this number is
measured, reported next to every shapes-bench result, and tested (at least 0.99 per condition).
"Mild" degradation is a Gaussian blur of 0.01 S (0.64 px at 64 px) and Gaussian pixel noise of
standard deviation 8/255, the kind of softness and grain a decoder adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from atelier.shapes.bench import BenchPrompt
from atelier.shapes.judge import judge
from atelier.shapes.render import render
from atelier.shapes.scene import realize

Condition = Literal["clean", "degraded"]
BLUR_SIGMA = 0.01  # fraction of S
NOISE_STD = 8.0  # of 255


def degrade(
    pixels: np.ndarray,
    rng: np.random.Generator,
    *,
    blur_sigma: float = BLUR_SIGMA,
    noise_std: float = NOISE_STD,
) -> np.ndarray:
    """Mild blur (sigma ``blur_sigma * S``) and Gaussian noise (``noise_std`` of 255), uint8 out."""
    size = pixels.shape[0]
    out = ndimage.gaussian_filter(
        pixels.astype(np.float64), sigma=(blur_sigma * size, blur_sigma * size, 0)
    )
    out += rng.normal(0.0, noise_std, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class FloorRow:
    size: int
    condition: Condition
    passed: int
    total: int
    failures: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.passed / self.total


def measure_floor(
    prompts: Sequence[BenchPrompt],
    *,
    sizes: Sequence[int] = (64, 128),
    conditions: Sequence[Condition] = ("clean", "degraded"),
    seed: int = 0,
    progress: bool = False,
) -> list[FloorRow]:
    """Judge a fresh random render of every prompt's spec, per size and condition."""
    rows = []
    for size in sizes:
        for condition in conditions:
            rng = np.random.default_rng([seed, size, conditions.index(condition)])
            row = FloorRow(size, condition, 0, 0)
            for bp in tqdm(prompts, desc=f"floor {size}px {condition}", disable=not progress):
                pixels = render(realize(bp.spec, rng), size)
                if condition == "degraded":
                    pixels = degrade(pixels, rng)
                verdict = judge(pixels, bp.spec)
                row.total += 1
                row.passed += verdict.passed
                if not verdict.passed:
                    row.failures.append((bp.prompt, verdict.reasons))
            rows.append(row)
    return rows


def format_floor(rows: Sequence[FloorRow]) -> str:
    """A plain-text table of floor rows."""
    lines = [f"{'size':>5} {'condition':<9} {'passed':>7} {'total':>6} {'rate':>7}"]
    lines += [
        f"{r.size:>5} {r.condition:<9} {r.passed:>7} {r.total:>6} {r.rate:>7.2%}" for r in rows
    ]
    return "\n".join(lines)
