"""Every sampler shares one signature (see ``base.py``); :func:`get_sampler` picks one by name."""

from __future__ import annotations

from typing import Protocol

import torch

from atelier.diffusion.denoiser import Denoiser
from atelier.diffusion.plan import SamplingPlan
from atelier.diffusion.sampler_names import SAMPLER_NAMES, SamplerName
from atelier.diffusion.samplers.base import Callback, Generators, StepInfo
from atelier.diffusion.samplers.ddim import sample_ddim
from atelier.diffusion.samplers.ddpm import sample_ddpm
from atelier.diffusion.samplers.dpm_solver import sample_dpmpp_2m, sample_dpmpp_2m_sde
from atelier.diffusion.samplers.euler import sample_euler
from atelier.diffusion.samplers.euler_ancestral import sample_euler_ancestral
from atelier.diffusion.samplers.heun import sample_heun
from atelier.diffusion.samplers.lcm import sample_lcm
from atelier.diffusion.samplers.unipc import sample_unipc


class Sampler(Protocol):
    def __call__(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        plan: SamplingPlan,
        *,
        generators: Generators = None,
        callback: Callback | None = None,
        start_step: int = 0,
    ) -> torch.Tensor: ...


SAMPLERS: dict[str, Sampler] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "unipc": sample_unipc,
    "lcm": sample_lcm,
}
# Each stochastic sampler's deterministic (ODE) counterpart: the same solver without the fresh
# noise it adds at every step (DDIM is DDPM with eta 0). LCM noises its x_0 estimate with fresh
# noise; DDIM with the noise that estimate implies (LCM's c_skip is at most 0.0025 from t = 1
# on, so its x_0 estimate is the network's own).
DETERMINISTIC_COUNTERPART: dict[str, str] = {
    "ddpm": "ddim",
    "euler_ancestral": "euler",
    "dpmpp_2m_sde": "dpmpp_2m",
    "lcm": "ddim",
}
STOCHASTIC: frozenset[str] = frozenset(DETERMINISTIC_COUNTERPART)


def deterministic(name: str) -> str:
    """``name`` if it adds no noise while sampling, else its deterministic counterpart."""
    get_sampler(name)
    return DETERMINISTIC_COUNTERPART.get(name, name)


def network_evaluations(name: str, steps: int, *, zero_terminal_snr: bool = False) -> int:
    """Denoiser calls per image for ``steps`` steps of ``name`` (tested against a counter):
    Heun makes two per step but one on the last, to sigma 0, and one on the first out of a
    zero-terminal-SNR schedule's infinite level; the others one per step."""
    get_sampler(name)
    if name != "heun":
        return steps
    return 2 * steps - 1 - (1 if zero_terminal_snr and steps > 1 else 0)


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name``; raises ValueError naming the valid choices."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLER_NAMES)}")
    return SAMPLERS[name]


__all__ = [
    "SAMPLERS",
    "SAMPLER_NAMES",
    "DETERMINISTIC_COUNTERPART",
    "STOCHASTIC",
    "Sampler",
    "SamplerName",
    "StepInfo",
    "deterministic",
    "get_sampler",
    "network_evaluations",
]
