"""The UNet as a latent consistency model's student: the guidance scale as an input (LCM's
w-embedding), equal to diffusers' ``time_cond_proj_dim`` network fed its LCM pipeline's
embedding; zero-initialised, the student computes its teacher bit for bit; off, nothing changes."""

from dataclasses import replace

import pytest
import torch

from atelier.kinds.folder import SHIPPED
from atelier.kinds.registry import load_model
from atelier.models import UNet, state_dict_to_diffusers, unet_config_to_diffusers
from atelier.models.unet import guidance_scale_embedding
from tests.models.test_unet import REL, TINY, VARIANT, diffusers_output, inputs, perturb
from tests.numerics import assert_close_to

SCALES = torch.tensor([1.0, 4.5])


def test_zero_initialised_it_is_the_network_without_it_bit_for_bit():
    torch.manual_seed(0)
    teacher = UNet(TINY).eval()
    perturb(teacher, seed=1)
    student = UNet(replace(TINY, guidance_embedding=True)).eval()
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"] and not unexpected
    x, t, context = inputs(TINY)
    with torch.no_grad():
        expected = teacher(x, t, context)
        for scale in (SCALES, torch.tensor([8.0, 0.0])):
            assert torch.equal(student(x, t, context, guidance=scale), expected)
        perturb(student.time_embedding.cond_proj, seed=2)  # trained, it reads the scale
        moved = student(x, t, context, guidance=SCALES)
        assert not torch.allclose(moved, expected)
        other = student(x, t, context, guidance=SCALES.flip(0))
        assert not torch.allclose(moved[0], other[0]) and not torch.allclose(moved[1], other[1])


@pytest.mark.parametrize("config", [TINY, VARIANT], ids=["tiny", "variant"])
def test_parity_to_diffusers_lcm_unet(config):
    from diffusers import LatentConsistencyModelPipeline, UNet2DConditionModel

    config = replace(config, guidance_embedding=True)
    torch.manual_seed(5)
    ours = UNet(config).eval()
    perturb(ours, seed=6)
    reference = UNet2DConditionModel(**unet_config_to_diffusers(config)).eval()
    reference.load_state_dict(state_dict_to_diffusers(ours.state_dict()))
    width = config.block_channels[0]
    # The LCM pipeline embeds w = guidance_scale - 1; the method reads nothing of its pipeline.
    w_embedding = LatentConsistencyModelPipeline.get_guidance_scale_embedding(
        None, SCALES - 1, embedding_dim=width
    )
    assert_close_to(guidance_scale_embedding(SCALES, width), w_embedding, rel=1e-6)
    x, t, context = inputs(config)
    with torch.no_grad():
        expected = reference(x, t, encoder_hidden_states=context.states,
                             encoder_attention_mask=context.mask,
                             class_labels=context.pooled if config.pooled_dim else None,
                             timestep_cond=w_embedding).sample  # fmt: skip
        got = ours(x, t, context, guidance=SCALES)
        assert_close_to(got, expected, rel=REL)
        without = diffusers_output(reference, config, x, t, context)
    assert not torch.allclose(without, expected)  # the reference did read the embedding


def test_guidance_is_required_exactly_when_configured():
    student = UNet(replace(TINY, guidance_embedding=True)).eval()
    x, t, context = inputs(TINY)
    with pytest.raises(ValueError, match="pass guidance exactly when"):
        student(x, t, context)
    with pytest.raises(ValueError, match=r"guidance must be \(2,\)"):
        student(x, t, context, guidance=torch.tensor(3.0))
    with pytest.raises(ValueError, match="pass guidance exactly when"):
        UNet(TINY)(x, t, context, guidance=SCALES)


def test_only_the_distilled_shipped_unet_reads_the_guidance_scale():
    # Loading checks every weight's name and shape, so no other shipped UNet gained a
    # parameter; tests/models/test_unet_image_conditioning.py checks each still computes what
    # it did.
    for folder in sorted(p for p in SHIPPED.iterdir() if (p / "unet.safetensors").is_file()):
        unet = load_model(folder).unet
        distilled = folder.name == "shapes-ldm-minilm-lcm"
        assert unet.config.guidance_embedding == distilled, folder.name
        assert (unet.time_embedding.cond_proj is not None) == distilled, folder.name
