"""DF-GAN's networks: shapes and widths, the fusion's identity initialisation, word attention
as an option that starts as the identity, the discriminator judging pairs sample by sample."""

import pytest
import torch

from atelier.models.gan_discriminator import JointDiscriminator, JointDiscriminatorConfig
from atelier.models.gan_generator import (
    Affine,
    FusionGenerator,
    GeneratorConfig,
    sentence_features,
)
from atelier.text.encoder import TextEmbedding


def text(b, d=12, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[:, :3] = True
    states = torch.randn(b, t, d, generator=g) * mask[..., None]
    return TextEmbedding(states, mask, torch.randn(b, d, generator=g))


def test_the_generator_draws_images_at_its_resolution_with_the_paper_widths():
    config = GeneratorConfig(resolution=32, z_dim=8, sentence_dim=12, word_dim=12, channels=4)
    assert [config.width(k) for k in range(4)] == [32, 16, 8, 4]
    g = FusionGenerator(config)
    x = g(torch.randn(3, 8), text(3))
    assert x.shape == (3, 3, 32, 32) and x.abs().max() <= 1
    assert FusionGenerator(GeneratorConfig(resolution=64, channels=16)).config.width(0) == 128
    with pytest.raises(ValueError, match="the sentence vector must be \\(3, 7\\)"):
        FusionGenerator(GeneratorConfig(resolution=16, z_dim=8, sentence_dim=7))(
            torch.randn(3, 8), text(3)
        )


def test_affine_starts_as_the_identity_whatever_the_condition():
    a = Affine(5, 4)
    h = torch.randn(2, 4, 3, 3)
    assert torch.equal(a(h, torch.randn(2, 5)), h)


def test_word_attention_is_an_option_that_changes_nothing_until_trained():
    config = GeneratorConfig(resolution=32, z_dim=8, sentence_dim=12, word_dim=12, channels=4)
    torch.manual_seed(0)
    plain = FusionGenerator(config)
    torch.manual_seed(0)
    attending = FusionGenerator(GeneratorConfig(**{**config.__dict__,
                                                   "attention_resolutions": (16, 32)}))  # fmt: skip
    assert set(attending.attention) == {"16", "32"}
    missing = attending.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert all(k.startswith("attention.") for k in missing)
    z, t = torch.randn(2, 8), text(2)
    assert torch.equal(plain(z, t), attending(z, t))
    with torch.no_grad():
        for module in attending.attention.values():
            module.gain.fill_(1.0)
    changed = attending(z, t)
    words = TextEmbedding(t.states.roll(1, 0), t.mask, t.pooled)  # other words, same sentence
    assert not torch.equal(changed, attending(z, words))
    with pytest.raises(ValueError, match="not block outputs; valid: \\[8, 16, 32\\]"):
        GeneratorConfig(resolution=32, attention_resolutions=(4,))


def test_the_discriminator_judges_each_pair_on_its_own():
    config = JointDiscriminatorConfig(resolution=32, channels=4, sentence_dim=12)
    d = JointDiscriminator(config)
    with torch.no_grad():
        for block in d.blocks:
            block.gamma.fill_(0.5)  # the residual branches on, as after training
    x, s = torch.randn(4, 3, 32, 32), sentence_features(torch.randn(4, 12))
    logits = d(x, s)
    assert logits.shape == (4,)
    f = d.features(x)
    assert f.shape == (4, 32, 4, 4)
    torch.testing.assert_close(d.judge(f, s), logits)
    alone = torch.cat([d(x[i : i + 1], s[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(alone, logits)
    assert not torch.allclose(d.judge(f, s.roll(1, 0)), logits)  # the text matters
    with pytest.raises(ValueError, match="x must be \\(B, 3, 32, 32\\)"):
        d(torch.randn(1, 3, 16, 16), s[:1])


def test_sentence_features_have_norm_sqrt_p_and_keep_the_empty_prompt_zero():
    s = torch.randn(3, 16)
    s[2] = 0
    norms = sentence_features(s).norm(dim=1)
    torch.testing.assert_close(norms[:2], torch.full((2,), 4.0))
    assert norms[2] == 0


def test_positional_maps_start_at_zero_and_give_each_pixel_its_own_bias():
    config = GeneratorConfig(resolution=32, z_dim=8, sentence_dim=12, word_dim=12, channels=4)
    torch.manual_seed(0)
    plain = FusionGenerator(config)
    torch.manual_seed(0)
    placed = FusionGenerator(GeneratorConfig(**{**config.__dict__, "positional": True}))
    shapes = [tuple(block.position.shape) for block in placed.blocks]
    assert shapes == [(32, 8, 8), (16, 16, 16), (8, 32, 32)]  # C_in at each output side
    missing = placed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == [f"blocks.{k}.position" for k in range(3)]
    z, t = torch.randn(2, 8), text(2)
    assert torch.equal(plain(z, t), placed(z, t))  # zero maps: the same generator
    # A bias at one pixel of the last block moves the image near that pixel only (three 3 x 3
    # convs follow: the block's two and to_rgb, at most 3 px away), so the map does place things.
    with torch.no_grad():
        placed.blocks[-1].position[:, 5, 20] = 3.0
    diff = (placed(z, t) - plain(z, t)).abs().sum((0, 1))  # (32, 32)
    rows, cols = torch.nonzero(diff > 1e-6, as_tuple=True)
    assert len(rows) > 0
    assert rows.min() >= 2 and rows.max() <= 8 and cols.min() >= 17 and cols.max() <= 23


def test_a_linear_output_is_the_tanh_generator_before_its_tanh():
    config = GeneratorConfig(resolution=16, z_dim=8, sentence_dim=12, word_dim=12, channels=4)
    torch.manual_seed(0)
    squashed = FusionGenerator(config)
    linear = FusionGenerator(GeneratorConfig(**{**config.__dict__, "output": "linear"}))
    linear.load_state_dict(squashed.state_dict())
    z, t = torch.randn(3, 8), text(3)
    torch.testing.assert_close(torch.tanh(linear(z, t)), squashed(z, t))
    with torch.no_grad():
        linear.to_rgb.bias.fill_(5.0)
    assert linear(z, t).max() > 1  # unbounded; whoever makes pixels clamps
    with pytest.raises(ValueError, match="output must be 'tanh' or 'linear', got 'relu'"):
        GeneratorConfig(output="relu")


def test_residual_gain_and_spectral_norm_options_of_the_discriminator():
    base = dict(resolution=32, channels=4, sentence_dim=12)
    dfgan = JointDiscriminator(JointDiscriminatorConfig(**base))
    assert all(b.gamma.item() == 0 for b in dfgan.blocks)
    torch.manual_seed(0)
    d = JointDiscriminator(JointDiscriminatorConfig(**base, residual_gain=1.0, spectral_norm=True))
    assert all(b.gamma.item() == 1 for b in d.blocks)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 3 * len(d.blocks) + 2  # conv_in, 3 per block, the head's 2
    x, s = torch.randn(4, 3, 32, 32), sentence_features(torch.randn(4, 12))
    for _ in range(30):  # one power iteration per training-mode call
        d(x, s)
    for conv in convs:
        # The weight a call uses has largest singular value 1 (as a matrix of out x in*k*k).
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.05, sigma
    d.eval()
    alone = torch.cat([d(x[i : i + 1], s[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(alone, d(x, s))  # still each pair on its own
