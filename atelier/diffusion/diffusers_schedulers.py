"""Our samplers as diffusers schedulers: the class and ``scheduler_config.json`` with which
diffusers' denoising loop visits the same timesteps with the same solver (``atelier export
--format diffusers``). Each pair's arithmetic is checked in ``tests/diffusion/test_sampler_*.py``;
a spacing or option the diffusers class computes otherwise, or lacks, is refused, never
approximated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.schedules import LCM_SOLVER_STEPS, TimestepSpacing

# The diffusers release whose schedulers these configs were checked against (tests/diffusion).
DIFFUSERS_VERSION = "0.42.1"


@dataclass(frozen=True)
class DiffusersScheduler:
    """A diffusers scheduler class, the timestep spacings it computes as ours do, whether it
    takes the zero-terminal-SNR rescale and Karras sigmas, and its fixed settings."""

    name: str
    spacings: tuple[TimestepSpacing, ...]
    zero_terminal_snr: bool = True
    karras: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


# Spacings measured against diffusers 0.42 at 4, 10, 40 and 48 steps: "trailing" agrees
# everywhere; DPM-Solver and UniPC round "linspace" and space "leading" otherwise, DDPM and DDIM
# round "linspace".
SCHEDULERS: dict[str, DiffusersScheduler] = {
    "ddpm": DiffusersScheduler("DDPMScheduler", ("leading", "trailing"),
                               settings={"clip_sample": False}),
    "ddim": DiffusersScheduler("DDIMScheduler", ("leading", "trailing"),
                               settings={"clip_sample": False, "set_alpha_to_one": True}),
    "euler": DiffusersScheduler("EulerDiscreteScheduler", ("leading", "trailing", "linspace"),
                                karras=True),
    "euler_ancestral": DiffusersScheduler("EulerAncestralDiscreteScheduler",
                                          ("leading", "trailing", "linspace")),
    "heun": DiffusersScheduler("HeunDiscreteScheduler", ("leading", "trailing", "linspace"),
                               zero_terminal_snr=False, karras=True),
    "dpmpp_2m": DiffusersScheduler("DPMSolverMultistepScheduler", ("trailing",), karras=True,
                                   settings={"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": DiffusersScheduler(
        "DPMSolverMultistepScheduler", ("trailing",), karras=True,
        settings={"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
    ),
    "unipc": DiffusersScheduler("UniPCMultistepScheduler", ("trailing",), karras=True),
    "lcm": DiffusersScheduler(
        "LCMScheduler", ("lcm",),
        settings={"clip_sample": False, "set_alpha_to_one": True,
                  "original_inference_steps": LCM_SOLVER_STEPS},
    ),
}  # fmt: skip
BETA_SCHEDULES = {
    "linear": "linear",
    "scaled_linear": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
}
# Our schedules' default beta ends (schedules.py), written out so the file does not rely on
# diffusers' defaults.
BETA_ENDS = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012)}


def scheduler_config(diffusion: DiffusionConfig, options: SamplingOptions) -> dict[str, Any]:
    """``scheduler_config.json`` for sampling a model trained with ``diffusion`` as ``options``
    say (sampler, spacing, Karras); a ValueError names what diffusers cannot match."""
    scheduler = SCHEDULERS[options.sampler]
    if options.spacing not in scheduler.spacings:
        raise ValueError(
            f"diffusers' {scheduler.name} does not space {options.spacing!r} timesteps as "
            f"{options.sampler} does; export with spacing {' or '.join(scheduler.spacings)} "
            "(-O spacing=...)"
        )
    if diffusion.zero_terminal_snr and not scheduler.zero_terminal_snr:
        raise ValueError(f"diffusers' {scheduler.name} has no zero-terminal-SNR schedule, which "
                         "this model was trained with; export with another --sampler")  # fmt: skip
    if options.karras and not scheduler.karras:
        raise ValueError(f"diffusers' {scheduler.name} takes no Karras sigmas; export with "
                         "-O karras=false or another --sampler")  # fmt: skip
    config: dict[str, Any] = {
        "_class_name": scheduler.name,
        "_diffusers_version": DIFFUSERS_VERSION,
        "num_train_timesteps": diffusion.n_train,
        "beta_schedule": BETA_SCHEDULES[diffusion.beta_schedule],
        "prediction_type": diffusion.prediction_type,
        "steps_offset": 0,
        **scheduler.settings,
    }
    if diffusion.beta_schedule in BETA_ENDS:
        start, end = BETA_ENDS[diffusion.beta_schedule]
        config["beta_start"] = start if diffusion.beta_start is None else diffusion.beta_start
        config["beta_end"] = end if diffusion.beta_end is None else diffusion.beta_end
    if options.spacing != "lcm":  # LCMScheduler picks its own steps on the skipping grid
        config["timestep_spacing"] = options.spacing
    if scheduler.zero_terminal_snr:
        config["rescale_betas_zero_snr"] = diffusion.zero_terminal_snr
    if scheduler.karras:
        config["use_karras_sigmas"] = options.karras
    return config
