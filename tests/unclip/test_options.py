"""unCLIP's options: validation, typed overrides, the budget on both stages' steps, NFE."""

import pytest

from atelier.budget import reset_budget, set_budget
from atelier.kinds.base import option_specs, with_options
from atelier.unclip.options import UnCLIPOptions


def test_options_are_checked_and_typed_from_strings():
    options = with_options(UnCLIPOptions(), {"prior_steps": "12", "two_sample_pick": "false",
                                             "prior_sampler": "euler"}, who="m")  # fmt: skip
    assert (options.prior_steps, options.two_sample_pick, options.candidates) == (12, False, 1)
    assert [s.name for s in option_specs(UnCLIPOptions)] == [
        "steps", "guidance", "sampler", "prior_steps", "prior_guidance", "prior_sampler",
        "two_sample_pick",
    ]  # fmt: skip
    for bad, message in (({"prior_steps": "0"}, "prior_steps must be a positive integer"),
                         ({"prior_sampler": "fast"}, "unknown prior_sampler 'fast'"),
                         ({"prior_guidance": "nan"}, "takes a finite number"),
                         ({"temperature": "1"}, "m takes no temperature option")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            with_options(UnCLIPOptions(), bad, who="m")


def test_the_step_budget_bounds_the_priors_steps_too():
    set_budget(max_steps=50)
    try:
        with pytest.raises(ValueError, match="50"):
            with_options(UnCLIPOptions(), {"prior_steps": "60"}, who="m")
        with pytest.raises(ValueError, match="50"):
            with_options(UnCLIPOptions(), {"steps": "60"}, who="m")
    finally:
        reset_budget()


def test_network_evaluations_count_both_stages():
    assert UnCLIPOptions(steps=20, prior_steps=10).network_evaluations() == 30
    heun = UnCLIPOptions(steps=5, sampler="heun", prior_steps=4)
    assert heun.network_evaluations() == 4 + 2 * 5 - 1
    assert UnCLIPOptions().label() == "dpmpp_2m-25-g3.0-prior-ddim-25-g4.0-pick2"
