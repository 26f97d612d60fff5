"""DPM-Solver++(2M), ODE and SDE: golden parity with diffusers' DPMSolverMultistepScheduler."""

import pytest
from diffusers import DPMSolverMultistepScheduler

from atelier.diffusion.samplers.dpm_solver import sample_dpmpp_2m, sample_dpmpp_2m_sde
from tests.diffusion.parity import REL, run_diffusers, run_ours
from tests.numerics import assert_close_to

VARIANTS = [(sample_dpmpp_2m, "dpmsolver++"), (sample_dpmpp_2m_sde, "sde-dpmsolver++")]
SAMPLERS = [sample_dpmpp_2m, sample_dpmpp_2m_sde]


@pytest.mark.parametrize("sampler,algorithm_type", VARIANTS, ids=["ode", "sde"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 50])
def test_parity_with_diffusers(sampler, algorithm_type, prediction_type, steps):
    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
        algorithm_type=algorithm_type,
        solver_order=2,
    )
    stochastic = algorithm_type.startswith("sde")
    ref = run_diffusers(scheduler, steps, stochastic=stochastic)
    ours = run_ours(sampler, scheduler, prediction_type, stochastic=stochastic)
    assert_close_to(ours, ref, rel=REL)
