"""UNet: shape, parity with diffusers UNet2DConditionModel both ways, masking, validation."""

from dataclasses import replace

import pytest
import torch

from atelier.models import (
    UNet,
    UNetConfig,
    state_dict_from_diffusers,
    state_dict_to_diffusers,
    unet_config_to_diffusers,
)
from atelier.models.attention import TransformerBlock
from atelier.text.encoder import TextEmbedding
from tests.numerics import assert_close_to

# Parity bound as a fraction of the reference's largest value (see tests/numerics.py). Ours and
# diffusers' run the same kernels on this CPU (gap 0), but need not on every machine.
REL = 1e-5
TINY = UNetConfig(
    in_channels=4,
    out_channels=4,
    block_channels=(32, 64),
    layers_per_block=1,
    attention_levels=(True, False),
    heads=2,
    context_dim=16,
    pooled_dim=12,
    groups=8,
)
# Exercises the other options: head_dim, scale-shift injection, depth 2, three levels, no pooled.
VARIANT = UNetConfig(
    in_channels=3,
    out_channels=5,
    block_channels=(16, 32, 32),
    layers_per_block=1,
    attention_levels=(False, True, True),
    heads=None,
    head_dim=8,
    context_dim=16,
    transformer_depth=2,
    groups=8,
    time_injection="scale_shift",
)
# Text-only attention at levels 1 and 2 (diffusers' only_cross_attention); the middle block at
# level 2 keeps its self-attention, as diffusers' UNetMidBlock2DCrossAttn does.
CROSS_ONLY = replace(VARIANT, cross_attention_only=(False, True, True))


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its init (zeros, ones) so no mapping error can hide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))


def inputs(config: UNetConfig, *, batch: int = 2, size: int = 8, tokens: int = 5, masked=False):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, config.in_channels, size, size, generator=generator)
    t = torch.tensor([3.0, 917.5])[:batch]
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    if masked:
        mask[0, 2:] = False
    states = torch.randn(batch, tokens, config.context_dim, generator=generator)
    states = states.masked_fill(~mask.unsqueeze(-1), 0.0)
    pooled = torch.randn(batch, config.pooled_dim or 1, generator=generator)
    return x, t, TextEmbedding(states=states, mask=mask, pooled=pooled)


def diffusers_output(model, config: UNetConfig, x, t, context: TextEmbedding) -> torch.Tensor:
    return model(
        x,
        t,
        encoder_hidden_states=context.states,
        encoder_attention_mask=context.mask,
        class_labels=context.pooled if config.pooled_dim is not None else None,
    ).sample


def test_output_shape_and_dtype():
    x, t, context = inputs(TINY)
    out = UNet(TINY)(x, t, context)
    assert out.shape == (2, TINY.out_channels, 8, 8)
    assert out.dtype == x.dtype and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "config, masked",
    # diffusers' only_cross_attention ignores the text padding mask in its first attention (ours
    # honours it), so the cross-only network is compared with every token visible.
    [(TINY, False), (TINY, True), (VARIANT, False), (VARIANT, True), (CROSS_ONLY, False)],
    ids=["tiny-full", "tiny-partial", "variant-full", "variant-partial", "cross-only-full"],
)
def test_parity_from_diffusers(config: UNetConfig, masked: bool):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(1)
    reference = UNet2DConditionModel(**unet_config_to_diffusers(config)).eval()
    perturb(reference, seed=2)
    ours = UNet(config).eval()
    ours.load_state_dict(state_dict_from_diffusers(reference.state_dict()))

    x, t, context = inputs(config, masked=masked)
    with torch.no_grad():
        expected = diffusers_output(reference, config, x, t, context)
        got = ours(x, t, context)
    assert_close_to(got, expected, rel=REL)


@pytest.mark.parametrize(
    "config", [TINY, VARIANT, CROSS_ONLY], ids=["tiny", "variant", "cross-only"]
)
def test_parity_to_diffusers(config: UNetConfig):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(3)
    ours = UNet(config).eval()
    perturb(ours, seed=4)
    reference = UNet2DConditionModel(**unet_config_to_diffusers(config)).eval()
    reference.load_state_dict(state_dict_to_diffusers(ours.state_dict()))

    x, t, context = inputs(config)
    with torch.no_grad():
        expected = diffusers_output(reference, config, x, t, context)
        got = ours(x, t, context)
    assert_close_to(got, expected, rel=REL)


def test_coord_channels_equal_diffusers_fed_the_coordinates():
    from diffusers import UNet2DConditionModel

    from atelier.models.unet import coordinate_grid

    config = replace(TINY, coord_channels=True)
    torch.manual_seed(5)
    ours = UNet(config).eval()
    perturb(ours, seed=6)
    reference = UNet2DConditionModel(**unet_config_to_diffusers(config)).eval()
    reference.load_state_dict(state_dict_to_diffusers(ours.state_dict()))
    x, t, context = inputs(config)
    grid = coordinate_grid(x)
    assert grid.shape == (2, 2, 8, 8) and grid[0, 0, 0, 0] == -grid[0, 0, -1, 0] == -7 / 8
    assert torch.equal(grid[0, 1, 3], torch.linspace(-7 / 8, 7 / 8, 8))  # x runs along a row
    with torch.no_grad():
        expected = diffusers_output(reference, config, torch.cat([x, grid], 1), t, context)
        got = ours(x, t, context)
    assert_close_to(got, expected, rel=REL)


def test_state_dict_round_trip_is_identity():
    sd = UNet(TINY).state_dict()
    back = state_dict_from_diffusers(state_dict_to_diffusers(sd))
    assert list(back) == list(sd)


@pytest.mark.parametrize("config", [TINY, CROSS_ONLY], ids=["tiny", "cross-only"])
def test_masked_tokens_do_not_change_output(config):
    torch.manual_seed(5)
    model = UNet(config).eval()
    x, t, context = inputs(config, masked=True)
    noisy = context.states.clone()
    noisy[0, 2:] = 100.0 * torch.randn_like(noisy[0, 2:])
    changed = TextEmbedding(states=noisy, mask=context.mask, pooled=context.pooled)
    with torch.no_grad():
        assert torch.equal(model(x, t, context), model(x, t, changed))
        # The visible tokens do matter, so the test above is not vacuous.
        noisy[0, 0] += 1.0
        assert not torch.equal(model(x, t, context), model(x, t, changed))


def test_cross_attention_only_levels_have_no_self_attention():
    model = UNet(CROSS_ONLY)
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, TransformerBlock)}
    for name, block in blocks.items():
        text_only = not name.startswith("mid_block")
        assert block.only_cross == text_only, name
        # A text-only first attention reads keys and values from the 16-wide text states.
        assert block.attn1.to_k.in_features == (16 if text_only else block.attn1.to_q.in_features)
    assert any(name.startswith("mid_block") for name in blocks)


def test_unconditional_unet_takes_no_context():
    config = replace(TINY, context_dim=None, pooled_dim=None)
    x, t, context = inputs(TINY)
    assert UNet(config)(x, t).shape == x.shape
    with pytest.raises(ValueError, match="context"):
        UNet(config)(x, t, context)
    with pytest.raises(ValueError, match="context_dim"):
        unet_config_to_diffusers(config)


@pytest.mark.parametrize(
    "changes",
    [
        {"block_channels": ()},
        {"block_channels": (32, 60)},  # 60 not divisible by 8 groups
        {"attention_levels": (True,)},
        {"heads": None},  # neither heads nor head_dim
        {"head_dim": 8},  # both
        {"heads": 3},  # 32 not divisible by 3
        {"layers_per_block": 0},
        {"context_dim": 0},
        {"time_injection": "film"},
        {"cross_attention_only": (True,)},  # one entry per level
        {"cross_attention_only": (False, True)},  # level 1 has no attention to make text-only
        {"cross_attention_only": (True, False), "context_dim": None, "pooled_dim": None},
    ],
)
def test_bad_config_raises(changes):
    with pytest.raises(ValueError):
        replace(TINY, **changes)


def test_bad_inputs_raise():
    model = UNet(TINY)
    x, t, context = inputs(TINY)
    with pytest.raises(ValueError, match="multiples"):
        model(x[:, :, :7, :7], t, context)
    with pytest.raises(ValueError, match="t must be"):
        model(x, t[:1], context)
    with pytest.raises(ValueError, match="context is required"):
        model(x, t)
    with pytest.raises(ValueError, match="pooled"):
        model(x, t, replace(context, pooled=context.pooled[:, :3]))


def test_attention_positions_start_as_the_position_free_network():
    from atelier.models.attention import fourier_positions

    config = replace(TINY, attention_positions=True)
    torch.manual_seed(7)
    ours = UNet(config).eval()
    torch.manual_seed(7)
    plain = UNet(TINY).eval()
    state = {k: v for k, v in ours.state_dict().items() if "position_embedding" not in k}
    plain.load_state_dict(state)
    x, t, context = inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, t, context), plain(x, t, context))
        for module in ours.modules():
            if getattr(module, "position_embedding", None) is not None:
                module.position_embedding.bias.fill_(0.5)
        assert not torch.allclose(ours(x, t, context), plain(x, t, context))
    f = fourier_positions(2, 3)
    assert f.shape == (6, 16) and torch.allclose(
        f[:, :8].pow(2) + f[:, 8:].pow(2), torch.ones(6, 8)
    )
    with pytest.raises(ValueError, match="no diffusers equivalent"):
        unet_config_to_diffusers(config)
