"""How to sample a token model: the options its folder stores as defaults and every command may
override (``--option temperature=0.9``, the API's ``options`` map, the page)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from atelier.tokens.masked import ScheduleName, get_schedule


def _check_common(temperature: float, guidance: float) -> None:
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number, got {guidance!r}")


def _guided_rows(guidance: float) -> int:
    """Rows of the network's batch per image: the conditional one, and at a guidance scale
    other than 1 the unconditional one it is guided against."""
    return 1 if guidance == 1 else 2


@dataclass(frozen=True)
class AutoregressiveOptions:
    """DALL-E sampling: temperature (0: greedy), top-k (0: off), top-p (1: off), and the
    classifier-free guidance scale on logits (1: the conditional model alone)."""

    temperature: float = field(default=1.0, metadata={"minimum": 0.0})
    top_k: int = field(default=0, metadata={"minimum": 0})
    top_p: float = field(default=1.0, metadata={"minimum": 0.0, "maximum": 1.0})
    guidance: float = 3.0

    def __post_init__(self) -> None:
        _check_common(self.temperature, self.guidance)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 keeps every code), "
                             f"got {self.top_k!r}")  # fmt: skip
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")

    def transformer_passes(self, image_length: int) -> int:
        """Transformer passes per image: one per token (n = ``image_length``), doubled by the
        unconditional rows guidance adds (none at scale 1, as the pipeline skips them)."""
        return image_length * _guided_rows(self.guidance)

    def label(self) -> str:
        """A short name for file names: ``t1.0-k0-p1.0-g3.0``."""
        return f"t{self.temperature}-k{self.top_k}-p{self.top_p}-g{self.guidance}"

    def summary(self) -> str:
        """One line for a model card."""
        return (f"temperature {self.temperature}, top-k {self.top_k or 'off'}, "
                f"top-p {self.top_p}, CFG scale {self.guidance}")  # fmt: skip


@dataclass(frozen=True)
class MaskedOptions:
    """MaskGIT decoding: parallel steps, sampling temperature, the guidance scale on logits,
    the noise on the confidence that picks which tokens to keep (``choice_temperature``,
    annealed to 0 over the steps; 0: the most confident strictly), and the mask schedule."""

    steps: int = field(default=12, metadata={"minimum": 1})
    temperature: float = field(default=1.0, metadata={"minimum": 0.0})
    guidance: float = 3.0
    choice_temperature: float = field(default=4.5, metadata={"minimum": 0.0})
    schedule: ScheduleName = "cosine"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        _check_common(self.temperature, self.guidance)
        if not (math.isfinite(self.choice_temperature) and self.choice_temperature >= 0):
            raise ValueError(f"choice_temperature must be a finite number >= 0, "
                             f"got {self.choice_temperature!r}")  # fmt: skip
        get_schedule(self.schedule)  # raises naming the valid schedules

    def transformer_passes(self, image_length: int) -> int:
        """Transformer passes per image: one per step whatever the grid (``image_length`` is
        taken only to share DALL-E's signature), doubled by guidance's unconditional rows."""
        return self.steps * _guided_rows(self.guidance)

    def label(self) -> str:
        """A short name for file names: ``cosine-12-t1.0-g3.0``."""
        return f"{self.schedule}-{self.steps}-t{self.temperature}-g{self.guidance}"

    def summary(self) -> str:
        """One line for a model card."""
        return (f"{self.steps} steps ({self.schedule} schedule), temperature "
                f"{self.temperature}, choice temperature {self.choice_temperature}, "
                f"CFG scale {self.guidance}")  # fmt: skip
