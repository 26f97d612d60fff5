"""Our samplers as diffusers schedulers (``atelier export --format diffusers``): the config loads
into its class with every setting taken, the class visits our timesteps, and what it would
compute otherwise is refused."""

import diffusers
import numpy as np
import pytest
import torch

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.diffusers_schedulers import SCHEDULERS, scheduler_config
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.plan import make_plan

DEFAULT = DiffusionConfig(zero_terminal_snr=True, prediction_type="v_prediction")  # the default's


def cases():
    for sampler, scheduler in SCHEDULERS.items():
        for diffusion in (DiffusionConfig(), DEFAULT):
            if diffusion.zero_terminal_snr and not scheduler.zero_terminal_snr:
                continue
            for spacing in scheduler.spacings:
                ztsnr = "-ztsnr" if diffusion.zero_terminal_snr else ""
                yield pytest.param(sampler, spacing, diffusion, id=f"{sampler}-{spacing}{ztsnr}")


@pytest.mark.parametrize("sampler, spacing, diffusion", cases())
@pytest.mark.parametrize("steps", [4, 40])
def test_the_scheduler_takes_every_setting_and_visits_our_timesteps(
    sampler, spacing, diffusion, steps
):
    config = scheduler_config(diffusion, SamplingOptions(sampler=sampler, spacing=spacing))
    scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    for key, value in config.items():
        if not key.startswith("_"):  # a setting the class does not take would be dropped
            assert scheduler.config[key] == value, key
    scheduler.set_timesteps(steps)
    # diffusers keeps fractional ("linspace") timesteps in float32: compared as such.
    theirs = torch.from_numpy(np.asarray(scheduler.timesteps, dtype=np.float32))
    if sampler == "heun":  # Heun visits each inner timestep twice
        theirs = torch.cat([theirs[:1], theirs[1::2]])
    ours = make_plan(diffusion.alphas_cumprod(), steps, spacing=spacing).timesteps
    assert torch.equal(theirs, ours.float())


def test_what_a_scheduler_computes_otherwise_is_refused():
    with pytest.raises(ValueError, match="DPMSolverMultistepScheduler does not space 'linspace'"):
        scheduler_config(DEFAULT, SamplingOptions(sampler="dpmpp_2m", spacing="linspace"))
    with pytest.raises(ValueError, match="HeunDiscreteScheduler has no zero-terminal-SNR"):
        scheduler_config(DEFAULT, SamplingOptions(sampler="heun"))
    with pytest.raises(ValueError, match="DDIMScheduler takes no Karras sigmas"):
        scheduler_config(DEFAULT, SamplingOptions(sampler="ddim", karras=True))
    with pytest.raises(ValueError, match="LCMScheduler does not space 'trailing'"):
        scheduler_config(DEFAULT, SamplingOptions(sampler="lcm"))
