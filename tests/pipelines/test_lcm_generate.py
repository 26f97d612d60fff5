"""A latent consistency model folder (the UNet takes the guidance scale as an input, sampled by
LCM's sampler): it loads, a batch gives the single runs' images bit for bit, each step is one
pass on the conditional rows, and what needs an unconditional pass is refused. An LCM-LoRA's
merged folder (the adapters folded into the base's UNet, no w-embedding, CFG scale 1) gives a
batch's images bit for bit too, and draws what the base with the LoRA file draws."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from atelier.diffusion.options import SamplingOptions
from atelier.kinds import adapters
from atelier.kinds.diffusion import Model, save_model
from atelier.kinds.registry import load_model
from atelier.models.lora import UNET_TARGETS, LoRAConfig, LoRANetwork
from atelier.models.unet import UNet
from atelier.training.runners.lcm import merged_unet
from tests.pipelines.conftest import tiny_model

PROMPTS = ["a red circle", "a blue square above a green triangle", "", "three yellow circles",
           "a red square"]  # fmt: skip
LCM_OPTIONS = SamplingOptions(steps=4, guidance=3.0, sampler="lcm", spacing="lcm")
LORA_OPTIONS = replace(LCM_OPTIONS, guidance=1.0)  # LCM-LoRA's: no unconditional pass


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


def tiny_lcm_lora() -> tuple[Model, LoRANetwork]:
    """The tiny model with an LCM-LoRA's adapters (attention and convolutions) moved off zero,
    merged into a model folder's UNet as the recipe exports it; and the adapters."""
    base = tiny_model()
    config = LoRAConfig(rank=4, alpha=4.0, targets=(*UNET_TARGETS, "conv1", "conv2"),
                        text_targets=())  # fmt: skip
    network = LoRANetwork.create({"unet": base.unet}, config).attach(1.0)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for _, adapter in network.items():
            adapter.up.weight.normal_(0, 0.05, generator=generator)
    merged = merged_unet(network, base.unet)
    network.detach()
    model = Model(replace(base.config, name="tiny-lcm-lora", defaults=LORA_OPTIONS), merged,
                  base.text_encoder, base.vae)  # fmt: skip
    return model, network


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory):
    """(the merged model folder, the LoRA folder, the base model folder)."""
    root = tmp_path_factory.mktemp("lcm-lora")
    model, network = tiny_lcm_lora()
    save_model(model, root / "tiny-lcm-lora", card="# tiny-lcm-lora\n")
    adapters.save_lora(network, root / "lora", name="tiny-lcm-lora", card="# lora\n", info={})
    save_model(tiny_model(), root / "tiny", card="# tiny\n")
    return root / "tiny-lcm-lora", root / "lora", root / "tiny"


def pixels(images):
    return [np.asarray(im) for im in images]


@pytest.mark.parametrize("which", ["lcm", "lcm-lora"])
def test_batch_equals_single_runs_bit_for_bit(lcm_dir, lora_dirs, which):
    model = load_model(lcm_dir if which == "lcm" else lora_dirs[0])
    options = LCM_OPTIONS if which == "lcm" else LORA_OPTIONS
    assert model.unet.config.guidance_embedding == (which == "lcm")
    assert model.defaults == options
    seeds = [5, 6, 7, 8, 9]
    batch = pixels(model.pipeline(rows=4)(PROMPTS, seeds=seeds, options=options))
    for prompt, seed, image in zip(PROMPTS, seeds, batch):
        single = pixels(model.pipeline(rows=4)([prompt], seeds=[seed], options=options))[0]
        assert np.array_equal(single, image), (prompt, seed)
    assert not np.array_equal(batch[0], batch[4])


def test_the_merged_folder_draws_what_the_base_draws_with_the_lora(lora_dirs):
    """The LCM sampler on the base with the LoRA file attached (hooks adding B A x) gives the
    merged folder's latents (W + B A) up to float rounding, and the LoRA does change them."""
    merged_dir, lora_dir, base_dir = lora_dirs
    merged, base = load_model(merged_dir), load_model(base_dir)
    prompts, seeds = PROMPTS[:3], [3, 4, 5]
    want = merged.pipeline().sample(prompts, seeds=seeds, options=LORA_OPTIONS)
    plain = base.pipeline().sample(prompts, seeds=seeds, options=LORA_OPTIONS)
    base.use_loras([(str(lora_dir), 1.0)])
    got = base.pipeline().sample(prompts, seeds=seeds, options=LORA_OPTIONS)
    scale = want.abs().max()
    assert (got - want).abs().max() <= 1e-4 * scale
    assert (plain - want).abs().max() > 1e-2 * scale


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
