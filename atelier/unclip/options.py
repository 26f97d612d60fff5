"""How to sample an unCLIP model: the prior's and the decoder's settings, which a model folder
stores as its defaults and every command may override (``--steps``, ``--option prior_steps=..``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from atelier.diffusion.samplers import SamplerName, get_sampler, network_evaluations


def _check_stage(what: str, steps: int, guidance: float, sampler: str) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{what}steps must be a positive integer, got {steps!r}")
    if not math.isfinite(guidance):
        raise ValueError(f"{what}guidance must be a finite number, got {guidance!r}")
    get_sampler(sampler)  # raises naming the valid samplers


@dataclass(frozen=True)
class UnCLIPOptions:
    """The decoder's steps, guidance and sampler (named as diffusion's, since the decoder makes
    the image: ``--steps`` and the server's step limit apply to it), the prior's, and whether
    the prior draws two embeddings per image and keeps the one closer to the caption
    (``two_sample_pick``, DALL-E 2's choice; off: one draw)."""

    steps: int = field(default=25, metadata={"minimum": 1})
    guidance: float = 3.0
    sampler: SamplerName = "dpmpp_2m"
    prior_steps: int = field(default=25, metadata={"minimum": 1})
    prior_guidance: float = 4.0
    prior_sampler: SamplerName = "ddim"
    two_sample_pick: bool = True

    def __post_init__(self) -> None:
        _check_stage("", self.steps, self.guidance, self.sampler)
        _check_stage("prior_", self.prior_steps, self.prior_guidance, self.prior_sampler)
        if not isinstance(self.two_sample_pick, bool):
            raise ValueError(f"two_sample_pick must be true or false, "
                             f"got {self.two_sample_pick!r}")  # fmt: skip

    @property
    def candidates(self) -> int:
        """Prior samples drawn per image: two with the pick, else one."""
        return 2 if self.two_sample_pick else 1

    def network_evaluations(self) -> int:
        """Network calls per image, the prior's and the decoder's (the candidates share each of
        the prior's calls; classifier-free guidance batches its two passes as one)."""
        return (network_evaluations(self.prior_sampler, self.prior_steps)
                + network_evaluations(self.sampler, self.steps))  # fmt: skip

    def label(self) -> str:
        """A short name for file names: ``dpmpp_2m-25-g3.0-prior-ddim-25-g4.0-pick2``."""
        return (f"{self.sampler}-{self.steps}-g{self.guidance}-prior-{self.prior_sampler}-"
                f"{self.prior_steps}-g{self.prior_guidance}-pick{self.candidates}")  # fmt: skip

    def summary(self) -> str:
        """One line for a model card."""
        pick = ", the closer of two samples kept" if self.two_sample_pick else ""
        return (f"prior {self.prior_sampler}, {self.prior_steps} steps, CFG scale "
                f"{self.prior_guidance}{pick}; decoder {self.sampler}, {self.steps} steps, "
                f"CFG scale {self.guidance}")  # fmt: skip
