"""A latent consistency model folder (the UNet takes the guidance scale as an input, sampled by
LCM's sampler): it loads, a batch gives the single runs' images bit for bit, each step is one
pass on the conditional rows, and what needs an unconditional pass is refused."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from atelier.diffusion.options import SamplingOptions
from atelier.kinds.diffusion import Model, save_model
from atelier.kinds.registry import load_model
from atelier.models.unet import UNet
from tests.pipelines.conftest import tiny_model

PROMPTS = ["a red circle", "a blue square above a green triangle", "", "three yellow circles",
           "a red square"]  # fmt: skip
LCM_OPTIONS = SamplingOptions(steps=4, guidance=3.0, sampler="lcm", spacing="lcm")


def tiny_lcm() -> Model:
    """The tiny model as a student: its weights, and a w-embedding moved off zero."""
    teacher = tiny_model()
    config = replace(teacher.config, name="tiny-lcm", defaults=LCM_OPTIONS,
                     unet=replace(teacher.config.unet, guidance_embedding=True))  # fmt: skip
    unet = UNet(config.unet)
    unet.load_state_dict(teacher.unet.state_dict(), strict=False)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        unet.time_embedding.cond_proj.weight.normal_(0, 0.3, generator=generator)
    return Model(config, unet.eval(), teacher.text_encoder, teacher.vae)


@pytest.fixture(scope="module")
def lcm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-lcm"
    save_model(tiny_lcm(), folder, card="# tiny-lcm\n")
    return folder


def pixels(images):
    return [np.asarray(im) for im in images]


def test_batch_equals_single_runs_bit_for_bit(lcm_dir):
    model = load_model(lcm_dir)
    assert model.unet.config.guidance_embedding and model.defaults == LCM_OPTIONS
    seeds = [5, 6, 7, 8, 9]
    batch = pixels(model.pipeline(rows=4)(PROMPTS, seeds=seeds, options=LCM_OPTIONS))
    for prompt, seed, image in zip(PROMPTS, seeds, batch):
        single = pixels(model.pipeline(rows=4)([prompt], seeds=[seed], options=LCM_OPTIONS))[0]
        assert np.array_equal(single, image), (prompt, seed)
    assert not np.array_equal(batch[0], batch[4])


def test_each_step_is_one_pass_reading_the_scale(lcm_dir):
    model = load_model(lcm_dir)
    seen = []
    hook = model.unet.register_forward_hook(
        lambda module, args, kwargs, out: seen.append((args[0].shape[0], kwargs["guidance"])),
        with_kwargs=True,
    )
    try:
        first = pixels(model(PROMPTS[:2], seeds=[1, 2]))
    finally:
        hook.remove()
    # One pass a step: two images are two rows, one 2-row call (fixed_batch.py), no padding.
    assert len(seen) == LCM_OPTIONS.steps and all(rows == 2 for rows, _ in seen)
    assert torch.equal(seen[0][1][:2], torch.full((2,), 3.0))
    other = pixels(model(PROMPTS[:2], seeds=[1, 2], options=replace(LCM_OPTIONS, guidance=6.0)))
    assert not np.array_equal(first[0], other[0])


def test_what_needs_an_unconditional_pass_is_refused(lcm_dir):
    model = load_model(lcm_dir)
    with pytest.raises(ValueError, match=r"cannot use a negative prompt \('green'\)"):
        model(["a red circle"], seeds=[0], negative_prompt="green")
    with pytest.raises(ValueError, match="prompts composed with AND"):
        model(["a red circle AND a blue square"], seeds=[0])
    with pytest.raises(ValueError, match=r"guidance rescale \(0.7\)"):
        model(["a red circle"], seeds=[0], options=replace(LCM_OPTIONS, guidance_rescale=0.7))
