"""The text tower's poolings: what each reads, what none reads (padding), and the causal mask."""

import pytest
import torch

from atelier.text import (
    TextEncoderConfig,
    TransformerText,
    TransformerTextConfig,
    build_text_encoder,
)
from atelier.text.pooling import AttentionPool, EndTokenPool, MeanPool, build_pooling
from atelier.text.tokenizer import train_bpe

# Two prompts laid out as <bos> tokens <eos> <pad>...: five and three real tokens.
IDS = torch.tensor([[1, 7, 8, 9, 2, 0, 0, 0], [1, 11, 2, 0, 0, 0, 0, 0]])
MASK = IDS != 0


def tower(pooling: str, seed: int = 0) -> TransformerText:
    torch.manual_seed(seed)
    config = TransformerTextConfig(vocab_size=50, max_length=8, width=16, layers=2, heads=2,
                                   pooling=pooling)  # fmt: skip
    return TransformerText(config).eval()


def with_padding(ids: torch.Tensor, value: int) -> torch.Tensor:
    return ids.masked_fill(~MASK, value)


def test_the_factory_names_the_valid_poolings():
    assert isinstance(build_pooling("mean", width=8, heads=2, mlp_ratio=2), MeanPool)
    assert isinstance(build_pooling("eos", width=8, heads=2, mlp_ratio=2), EndTokenPool)
    assert isinstance(build_pooling("attention", width=8, heads=2, mlp_ratio=2), AttentionPool)
    with pytest.raises(ValueError, match="valid: mean, eos, attention"):
        build_pooling("cls", width=8, heads=2, mlp_ratio=2)
    with pytest.raises(ValueError, match="valid: mean, eos, attention"):
        TransformerTextConfig(vocab_size=50, pooling="max")
    with pytest.raises(ValueError, match="the frozen MiniLM pools by the mean"):
        build_text_encoder(TextEncoderConfig(kind="minilm", pooling="eos"))


def test_only_eos_pooling_is_causal():
    assert [tower(p).config.causal for p in ("mean", "eos", "attention")] == [False, True, False]


def test_eos_pooling_reads_the_last_real_token():
    model = tower("eos")
    with torch.no_grad():
        states, pooled = model(IDS, MASK)
    torch.testing.assert_close(pooled, states[[0, 1], [4, 2]], rtol=0, atol=0)


@pytest.mark.parametrize("pooling", ["mean", "eos", "attention"])
def test_padding_is_never_read(pooling):
    # Whatever sits after the end token (ids, and so embeddings) changes no real state and no
    # pooled vector.
    model = tower(pooling)
    with torch.no_grad():
        states, pooled = model(IDS, MASK)
        for value in (3, 33, 49):
            other_states, other_pooled = model(with_padding(IDS, value), MASK)
            torch.testing.assert_close(other_states[MASK], states[MASK], rtol=0, atol=1e-6)
            torch.testing.assert_close(other_pooled, pooled, rtol=0, atol=1e-6)


def test_attention_pooling_ignores_padded_states_themselves():
    # The pool alone, fed states that are huge where the mask is False.
    torch.manual_seed(0)
    pool = AttentionPool(16, 2, 2)
    states = torch.randn(2, 8, 16)
    noisy = states.masked_fill(~MASK[..., None], 1e4)
    torch.testing.assert_close(pool(noisy, MASK), pool(states, MASK), rtol=0, atol=1e-6)
    # ... and it does read the real tokens.
    changed = states.clone()
    changed[0, 1] += 1.0
    assert not torch.allclose(pool(changed, MASK)[0], pool(states, MASK)[0])


def test_causal_mask_keeps_a_token_blind_to_later_tokens():
    model = tower("eos")
    changed = IDS.clone()
    changed[0, 3] = 42  # the third word of the first prompt
    with torch.no_grad():
        states, pooled = model(IDS, MASK)
        other, other_pooled = model(changed, MASK)
    torch.testing.assert_close(other[0, :3], states[0, :3], rtol=0, atol=1e-6)
    assert not torch.allclose(other[0, 3:5], states[0, 3:5])  # itself and the end token see it
    assert not torch.allclose(other_pooled[0], pooled[0])
    torch.testing.assert_close(other[1], states[1], rtol=0, atol=1e-6)  # another row: untouched
    # Without the causal mask, the earlier tokens do see the change.
    bidirectional = tower("mean")
    with torch.no_grad():
        before, _ = bidirectional(IDS, MASK)
        after, _ = bidirectional(changed, MASK)
    assert not torch.allclose(after[0, :3], before[0, :3])


@pytest.mark.parametrize("pooling", ["eos", "attention"])
def test_a_prompt_encodes_the_same_alone_or_beside_a_longer_one(pooling):
    # The window and padding a batch adds are never read, through the whole encoder.
    tokenizer = train_bpe(
        ["a red circle and a blue square", "a green triangle"] * 4, vocab_size=300
    )
    torch.manual_seed(0)
    config = TextEncoderConfig(max_length=16, width=16, layers=1, heads=2, pooling=pooling)
    encoder = build_text_encoder(config, tokenizer=tokenizer).eval()
    with torch.no_grad():
        alone = encoder.encode(["a green triangle"]).pooled
        beside = encoder.encode(["a red circle and a blue square", "a green triangle"]).pooled
    torch.testing.assert_close(beside[1:], alone, rtol=0, atol=1e-6)
