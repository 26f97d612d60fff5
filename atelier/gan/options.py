"""How to sample a GAN: the options its folder stores as defaults and every command may
override (``--option truncation=0.7``, the API's ``options`` map, the page)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GANOptions:
    """``truncation`` psi in [0, 1]: the noise z scaled toward its mean (``gan/noise.py``);
    1 samples as trained, 0 gives the same image for every seed."""

    truncation: float = field(default=1.0, metadata={"minimum": 0.0, "maximum": 1.0})

    def __post_init__(self) -> None:
        psi = self.truncation
        if isinstance(psi, bool) or not isinstance(psi, int | float) or not math.isfinite(psi):
            raise ValueError(f"truncation must be a number in [0, 1], got {psi!r}")
        if not 0.0 <= psi <= 1.0:
            raise ValueError(f"truncation must be in [0, 1], got {psi!r}")

    def label(self) -> str:
        """A short name for file names: ``psi0.7``."""
        return f"psi{self.truncation}"

    def summary(self) -> str:
        """One line for a model card."""
        return f"truncation psi {self.truncation}"
