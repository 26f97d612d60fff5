"""How to sample a diffusion model: the options a diffusion model's folder stores as its defaults
and every command may override (steps, guidance, sampler, timestep spacing)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from atelier.diffusion.samplers import SamplerName, get_sampler
from atelier.diffusion.schedules import TimestepSpacing

# The denoising network's arithmetic (pipelines/runtime.py): float32, or bfloat16 under autocast
# where the device computes it natively.
Precision = Literal["fp32", "bf16"]


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample; the defaults are the model's own unless overridden."""

    steps: int = field(default=20, metadata={"minimum": 1})
    guidance: float = 3.0
    sampler: SamplerName = "dpmpp_2m"
    spacing: TimestepSpacing = "trailing"
    karras: bool = False
    # phi of guidance rescale (Lin et al. 2024), diffusers' ``guidance_rescale``: 0 = plain CFG.
    guidance_rescale: float = field(default=0.0, metadata={"minimum": 0.0, "maximum": 1.0})
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not math.isfinite(self.guidance):
            raise ValueError(f"guidance must be a finite number, got {self.guidance!r}")
        get_sampler(self.sampler)  # raises naming the valid samplers
        if not 0.0 <= self.guidance_rescale <= 1.0:
            raise ValueError(f"guidance_rescale must be in [0, 1], got {self.guidance_rescale!r}")
        if self.precision not in get_args(Precision):
            raise ValueError(f"unknown precision {self.precision!r}; valid: "
                             f"{', '.join(get_args(Precision))}")  # fmt: skip

    def overridden(self, **changes: Any) -> SamplingOptions:
        """These options with every change that is not None (a command's unset flags are None);
        raises ValueError naming a bad value."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def label(self) -> str:
        """A short name for file names: ``dpmpp_2m-20-g3.0`` (``-r0.7`` with a rescale)."""
        rescaled = f"-r{self.guidance_rescale}" if self.guidance_rescale else ""
        precision = f"-{self.precision}" if self.precision != "fp32" else ""
        return f"{self.sampler}-{self.steps}-g{self.guidance}{rescaled}{precision}"

    def summary(self) -> str:
        """One line for a model card: sampler, steps, spacing and CFG scale."""
        return (f"{self.sampler}, {self.steps} steps ({self.spacing} spacing), "
                f"CFG scale {self.guidance}")  # fmt: skip
