"""LoRA: weight 0 is the base bit for bit, merge/unmerge restores the weights exactly, a file
atelier writes loads into diffusers' UNet2DConditionModel (through peft) with the same output,
a kohya-format file gives what its diffusers-format twin gives, and files that do not fit are
refused naming why."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from atelier.kinds.adapters import DIFFUSERS_FILE, read_tensors, save_lora
from atelier.models import UNet, state_dict_to_diffusers, unet_config_to_diffusers
from atelier.models.lora import LoRAConfig, LoRANetwork
from atelier.models.lora_keys import (
    diffusers_name,
    from_tensors,
    kohya_name,
    linear_names,
    to_diffusers,
    to_kohya,
)
from atelier.models.unet import UNetConfig
from tests.models.test_unet import TINY, diffusers_output, inputs, perturb
from tests.numerics import assert_close_to

REL = 1e-5


ATTENTION = LoRAConfig().targets
# LoCon: the resnets' convolutions too, and the stride-2 downsampling one.
WITH_CONVS = (*ATTENTION, "conv1", "conv2", "conv")


def trained_lora(unet: UNet, *, rank: int = 4, alpha: float = 8.0, seed: int = 2,
                 targets: tuple[str, ...] = ATTENTION) -> LoRANetwork:  # fmt: skip
    """A LoRA on ``unet``'s attention (or ``targets``) with B moved off zero, as if trained."""
    config = LoRAConfig(rank=rank, alpha=alpha, targets=targets)
    network = LoRANetwork.create({"unet": unet}, config)
    perturb(network, seed=seed)
    return network


def base_unet(config: UNetConfig = TINY) -> UNet:
    torch.manual_seed(0)
    unet = UNet(config).eval()
    perturb(unet, seed=1)
    return unet


def test_targets_the_attention_projections():
    network = trained_lora(base_unet())
    ends = {name.rsplit(".", 1)[-1] for name in network.names}
    assert ends == {"to_q", "to_k", "to_v", "to_out"}
    assert all(name.startswith("unet.") for name in network.names)


def test_dotted_targets_pick_the_cross_attention_only():
    # Custom Diffusion's choice: the keys and values that read the text, not self-attention's.
    unet = base_unet()
    network = LoRANetwork.create({"unet": unet},
                                 LoRAConfig(targets=("attn2.to_k", "attn2.to_v")))  # fmt: skip
    ends = {tuple(name.rsplit(".", 2)[-2:]) for name in network.names}
    assert ends == {("attn2", "to_k"), ("attn2", "to_v")}
    every = LoRANetwork.create({"unet": base_unet()}, LoRAConfig(targets=("to_k",)))
    cross_keys = [name for name in network.names if name.endswith("to_k")]
    assert len(every.names) == 2 * len(cross_keys)  # attn1's and attn2's keys
    assert {name.rsplit(".", 2)[-2] for name in every.names} == {"attn1", "attn2"}
    with pytest.raises(ValueError, match="no linear layer or convolution is named"):
        LoRANetwork.create({"unet": base_unet()}, LoRAConfig(targets=("n2.to_k",)))


def test_new_lora_and_weight_zero_are_the_base_bit_for_bit():
    unet = base_unet()
    x, t, c = inputs(TINY)
    with torch.no_grad():
        base = unet(x, t, c)
        fresh = LoRANetwork.create({"unet": unet}, LoRAConfig()).attach(1.0)
        assert torch.equal(unet(x, t, c), base)  # B starts at zero
        fresh.detach()
        network = trained_lora(unet).attach(0.0)
        assert torch.equal(unet(x, t, c), base)
        network.attach(1.0)
        assert not torch.allclose(unet(x, t, c), base)
        network.detach()
        assert torch.equal(unet(x, t, c), base)


@pytest.mark.parametrize("targets", [ATTENTION, WITH_CONVS], ids=["attention", "convs"])
def test_merge_equals_hooks_and_unmerge_restores_every_weight(targets):
    unet = base_unet()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    x, t, c = inputs(TINY)
    network = trained_lora(unet, targets=targets).attach(0.7)
    with torch.no_grad():
        hooked = unet(x, t, c)
        network.merge()
        merged = unet(x, t, c)
    assert_close_to(merged, hooked, rel=REL)
    assert any(not torch.equal(before[k], v) for k, v in unet.state_dict().items())
    network.unmerge()
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())


def test_key_names_both_ways():
    unet = base_unet()
    name = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out"
    assert (
        diffusers_name(name)
        == "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0"
    )
    assert (
        kohya_name(name)
        == "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0"
    )
    names = linear_names({"unet": unet})
    assert len({kohya_name(n) for n in names}) == len(names)  # the table is one to one
    network = trained_lora(unet)
    for tensors, metadata in ((to_kohya(network), None), to_diffusers(network)):
        again, _ = from_tensors({"unet": unet}, tensors, metadata)
        assert again.names == network.names
        for (_, a), (_, b) in zip(again.items(), network.items()):
            assert torch.equal(a.down.weight, b.down.weight) and a.alpha == b.alpha


@pytest.mark.parametrize("targets", [ATTENTION, WITH_CONVS], ids=["attention", "convs"])
def test_atelier_lora_gives_diffusers_the_same_output(tmp_path, targets):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    unet = base_unet()
    network = trained_lora(unet, rank=4, alpha=8.0, targets=targets)
    folder = save_lora(network, tmp_path / "lora", name="concept", card="# concept\n", info={})
    reference = UNet2DConditionModel(**unet_config_to_diffusers(TINY)).eval()
    reference.load_state_dict(state_dict_to_diffusers(unet.state_dict()))
    state, alphas, metadata = StableDiffusionLoraLoaderMixin.lora_state_dict(
        str(folder / DIFFUSERS_FILE), return_lora_metadata=True
    )
    StableDiffusionLoraLoaderMixin.load_lora_into_unet(
        state, alphas, reference, adapter_name="concept", metadata=metadata
    )
    reference.set_adapters(["concept"], weights=[0.6])
    x, t, c = inputs(TINY)
    with torch.no_grad():
        base = unet(x, t, c)
        network.attach(0.6)
        got = unet(x, t, c)
        expected = diffusers_output(reference, TINY, x, t, c)
    assert (got - base).abs().max() > 0.01 * base.abs().max()  # the LoRA changes the output
    assert_close_to(got, expected, rel=REL)


@pytest.mark.parametrize("targets", [ATTENTION, WITH_CONVS], ids=["attention", "convs"])
def test_kohya_file_loads_as_its_diffusers_twin(tmp_path, targets):
    unet = base_unet()
    network = trained_lora(unet, rank=2, alpha=1.0, targets=targets)
    folder = save_lora(network, tmp_path / "lora", name="concept", card="# c\n", info={})
    x, t, c = inputs(TINY)
    outputs = {}
    for file in (folder / DIFFUSERS_FILE, folder / "concept.safetensors"):
        tensors, metadata = read_tensors(file, "LoRA")
        loaded, fmt = from_tensors({"unet": unet}, tensors, metadata)
        loaded.attach(0.8)
        with torch.no_grad():
            outputs[fmt] = unet(x, t, c)
        loaded.detach()
    assert set(outputs) == {"diffusers", "kohya"}
    assert torch.equal(outputs["diffusers"], outputs["kohya"])


def test_a_lora_for_another_model_is_refused_naming_the_shapes():
    network = trained_lora(base_unet())
    wider = base_unet(UNetConfig(**{**TINY.__dict__, "block_channels": (32, 96)}))
    with pytest.raises(ValueError, match="does not fit this model.*made for another model"):
        from_tensors({"unet": wider}, to_kohya(network))
    with pytest.raises(ValueError, match="text_encoder.*this model lacks"):
        LoRANetwork({"unet": wider}, {"text_encoder.attn.qkv": network.items()[0][1]})


def test_malformed_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ValueError, match="corrupt or not a safetensors file"):
        read_tensors(garbage, "LoRA")
    other = tmp_path / "other.safetensors"
    save_file({"model.weight": torch.zeros(2, 2)}, str(other))
    tensors, metadata = read_tensors(other, "LoRA")
    with pytest.raises(ValueError, match="not a LoRA file in a known format"):
        from_tensors({"unet": base_unet()}, tensors, metadata)
    deep = tmp_path / "deep.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 2, 3, 1, 1)}, str(deep))
    with pytest.raises(ValueError, match="more than 4 dimensions"):
        read_tensors(deep, "LoRA")
