"""The samplers' names, apart from their code: the command line lists them in ``--help`` without
importing torch (``samplers/__init__.py`` maps each name to its function)."""

from __future__ import annotations

from typing import Literal, get_args

SamplerName = Literal[
    "ddpm", "ddim", "euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "unipc", "lcm"
]
SAMPLER_NAMES: tuple[str, ...] = get_args(SamplerName)
