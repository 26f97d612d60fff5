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
