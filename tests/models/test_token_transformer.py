"""Token transformers: the KV-cached sampler equals the uncached one token for token, with known
tokens too (and its logits the full pass's), with the caption as a prefix or read by
cross-attention (whose keys are computed once per pass and whose mask is honoured), DALL-E's
attention is causal and MaskGIT's is not, configs refuse bad sizes."""

from dataclasses import replace

import pytest
import torch

from atelier.models.token_transformer import (
    AutoregressiveTransformer,
    MaskedTokenTransformer,
    TokenTransformerConfig,
    cat_text,
    text_rows,
)
from atelier.pipelines.token2image import cached_logits, uncached_logits
from atelier.text.encoder import TextEmbedding
from atelier.tokens.autoregressive import sample_autoregressive
from atelier.tokens.logits import with_guidance

CONFIG = TokenTransformerConfig(text_vocab=40, text_length=6, codebook_size=24, grid=4, width=32,
                                layers=3, heads=4)  # fmt: skip


def random_network(cls, seed=0):
    torch.manual_seed(seed)
    network = cls(CONFIG).eval()
    with torch.no_grad():  # weights far from the init, so the logits are far from uniform
        for p in network.parameters():
            p.normal_(0, 0.3)
    return network


def text_ids(batch, seed=1):
    return torch.randint(0, CONFIG.text_vocab, (batch, CONFIG.text_length),
                         generator=torch.Generator().manual_seed(seed))  # fmt: skip


@pytest.mark.parametrize(
    "knobs", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}, {"guidance": 3.0}]
)
def test_the_kv_cached_sampler_equals_the_uncached_one_token_for_token(knobs):
    network = random_network(AutoregressiveTransformer)
    text, uncond = text_ids(3), text_ids(1, seed=2).expand(3, -1)
    guidance = knobs.pop("guidance", 1.0)

    def draw(make):
        logits_fn = make(network, text)
        if guidance != 1.0:
            logits_fn = with_guidance(make(network, torch.cat([text, uncond])), guidance)
        generators = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
        return sample_autoregressive(logits_fn, batch=3, length=CONFIG.image_length,
                                     generators=generators, **knobs)  # fmt: skip

    cached, uncached = draw(cached_logits), draw(uncached_logits)
    assert cached.shape == (3, 16)
    assert torch.equal(cached, uncached)
    assert len(set(cached.flatten().tolist())) > 3  # a real draw, not one repeated code


@pytest.mark.parametrize("pattern", ["scattered", "first_half", "last_token", "none", "all"])
def test_with_known_tokens_the_cached_sampler_still_equals_the_uncached_one(pattern):
    # Image completion: kept tokens are teacher-forced, the others drawn, with and without
    # the KV cache (and with guidance, which runs both halves through the same cache).
    network = random_network(AutoregressiveTransformer)
    text, uncond = text_ids(3), text_ids(1, seed=2).expand(3, -1)
    known = torch.randint(0, CONFIG.codebook_size, (3, CONFIG.image_length),
                          generator=torch.Generator().manual_seed(4))  # fmt: skip
    n = CONFIG.image_length
    keep = {
        "scattered": torch.rand(3, n, generator=torch.Generator().manual_seed(5)) < 0.5,
        "first_half": torch.arange(n).expand(3, n) < n // 2,
        "last_token": torch.arange(n).expand(3, n) < n - 1,
        "none": torch.zeros(3, n, dtype=torch.bool),
        "all": torch.ones(3, n, dtype=torch.bool),
    }[pattern]

    def draw(make):
        logits_fn = with_guidance(make(network, torch.cat([text, uncond])), 3.0)
        generators = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
        return sample_autoregressive(logits_fn, batch=3, length=n, generators=generators,
                                     known=known, keep=keep)  # fmt: skip

    cached, uncached = draw(cached_logits), draw(uncached_logits)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[keep], known[keep])
    if pattern != "all":
        assert not torch.equal(cached[~keep], known[~keep])  # drawn, not copied
    with pytest.raises(ValueError, match="together"):
        sample_autoregressive(cached_logits(network, text), batch=3, length=n,
                              generators=[torch.Generator()] * 3, known=known)  # fmt: skip


def test_cached_logits_equal_the_full_pass():
    network = random_network(AutoregressiveTransformer)
    text = text_ids(2)
    codes = torch.randint(0, CONFIG.codebook_size, (2, CONFIG.image_length))
    with torch.no_grad():
        full = network(text, codes[:, :-1])  # (2, n, K)
        first, cache = network.start(text)
        stepped = [first] + [network.extend(codes[:, i], cache) for i in range(15)]
    assert cache.length == CONFIG.text_length + 15
    torch.testing.assert_close(torch.stack(stepped, 1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="the grid's last"):
        network.extend(codes[:, 0], cache)


def test_autoregressive_attention_is_causal_and_masked_attention_is_not():
    text = text_ids(1)
    codes = torch.randint(0, CONFIG.codebook_size, (1, CONFIG.image_length))
    changed = codes.clone()
    changed[0, 9] = (codes[0, 9] + 1) % CONFIG.codebook_size
    ar = random_network(AutoregressiveTransformer)
    with torch.no_grad():
        a, b = ar(text, codes[:, :-1]), ar(text, changed[:, :-1])
    # Logits at j predict token j from tokens < j: tokens 0..9 do not see token 9.
    assert torch.equal(a[:, :10], b[:, :10]) and not torch.allclose(a[:, 10:], b[:, 10:])
    masked = random_network(MaskedTokenTransformer)
    assert masked.mask_id == CONFIG.codebook_size
    with torch.no_grad():
        a, b = masked(text, codes), masked(text, changed)
    assert a.shape == (1, 16, CONFIG.codebook_size) and not torch.allclose(a[:, :9], b[:, :9])
    with torch.no_grad():
        masked(text, torch.full((1, 16), masked.mask_id))  # an all-masked grid is an input
    with pytest.raises(ValueError, match=r"image tokens must be \(B, 16\)"):
        masked(text, codes[:, :5])
    with pytest.raises(ValueError, match=r"text ids must be \(B, 6\)"):
        masked(text[:, :3], codes)


def test_config_refuses_bad_sizes():
    with pytest.raises(ValueError, match="not divisible by heads"):
        TokenTransformerConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="grid must be a positive integer"):
        TokenTransformerConfig(grid=0)
    with pytest.raises(ValueError, match="text_length must be at least 2"):
        TokenTransformerConfig(text_length=1)


# Cross-attention (Parti): the sequence holds only image tokens (after <bos> for DALL-E) and every
# block reads a frozen encoder's states, here random ones with ragged padding masks.
CROSS = replace(CONFIG, text_conditioning="cross_attention", context_dim=12)


def random_cross_network(cls, seed=0):
    torch.manual_seed(seed)
    network = cls(CROSS).eval()
    with torch.no_grad():
        for p in network.parameters():
            p.normal_(0, 0.3)
    return network


def text_states(batch, seed=1):
    """Encoder-like states: (B, T, D) with each row's first 2..T positions valid, zero beyond."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, CROSS.text_length, CROSS.context_dim, generator=g) * 3
    lengths = torch.randint(2, CROSS.text_length + 1, (batch,), generator=g)
    mask = torch.arange(CROSS.text_length)[None] < lengths[:, None]  # (B, T)
    return TextEmbedding(states.masked_fill(~mask[..., None], 0.0), mask,
                         torch.zeros(batch, CROSS.context_dim))  # fmt: skip


def null_states(batch):
    """The encoders' unconditional input: zero states, only position 0 attended to."""
    mask = torch.zeros(batch, CROSS.text_length, dtype=torch.bool)
    mask[:, 0] = True
    return TextEmbedding(torch.zeros(batch, CROSS.text_length, CROSS.context_dim), mask,
                         torch.zeros(batch, CROSS.context_dim))  # fmt: skip


@pytest.mark.parametrize("knobs", [{}, {"top_k": 5}, {"guidance": 3.0}])
def test_cross_attention_kv_cached_sampler_equals_the_uncached_one_token_for_token(knobs):
    network = random_cross_network(AutoregressiveTransformer)
    text, uncond = text_states(3), null_states(3)
    guidance = knobs.pop("guidance", 1.0)

    def draw(make):
        logits_fn = make(network, text)
        if guidance != 1.0:
            logits_fn = with_guidance(make(network, cat_text([text, uncond])), guidance)
        generators = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
        return sample_autoregressive(logits_fn, batch=3, length=CROSS.image_length,
                                     generators=generators, **knobs)  # fmt: skip

    cached, uncached = draw(cached_logits), draw(uncached_logits)
    assert torch.equal(cached, uncached)
    assert len(set(cached.flatten().tolist())) > 3


def test_cross_attention_reads_the_text_once_per_cached_pass_and_equals_the_full_pass():
    network = random_cross_network(AutoregressiveTransformer)
    assert not hasattr(network, "text_embed") and network.prefix_length == 1
    text = text_states(2)
    codes = torch.randint(0, CROSS.codebook_size, (2, CROSS.image_length))
    projections = []
    for block in network.blocks:
        block.cross_attn.kv.register_forward_hook(lambda m, i, o: projections.append(o.shape))
    with torch.no_grad():
        full = network(text, codes[:, :-1])  # (2, n, K)
        assert len(projections) == CROSS.layers
        first, cache = network.start(text)
        stepped = [first] + [network.extend(codes[:, i], cache) for i in range(15)]
    # The context's keys and values: once for the full pass, once for the whole cached pass.
    assert len(projections) == 2 * CROSS.layers
    assert cache.length == 1 + 15
    torch.testing.assert_close(torch.stack(stepped, 1), full, rtol=1e-5, atol=1e-5)


def test_cross_attention_honours_the_text_mask_and_reads_the_text():
    codes = torch.randint(0, CROSS.codebook_size, (2, CROSS.image_length))
    text = text_states(2)
    padded = TextEmbedding(text.states.masked_fill(~text.mask[..., None], 5.0), text.mask,
                           text.pooled)  # fmt: skip
    other = text_states(2, seed=5)
    for cls, image in ((AutoregressiveTransformer, codes[:, :-1]), (MaskedTokenTransformer, codes)):
        network = random_cross_network(cls)
        with torch.no_grad():
            a, b, c = network(text, image), network(padded, image), network(other, image)
        assert a.shape == (2, CROSS.image_length, CROSS.codebook_size)
        torch.testing.assert_close(a, b)  # what is under the mask is never read
        assert not torch.allclose(a, c)  # what is not, is
    masked = random_cross_network(MaskedTokenTransformer)
    with pytest.raises(TypeError, match="pass a TextEmbedding, not BPE ids"):
        masked(text_ids(2), codes)
    with pytest.raises(ValueError, match=r"text states must be \(B, 6, 12\)"):
        masked(TextEmbedding(text.states[:, :4], text.mask[:, :4], text.pooled), codes)
    with pytest.raises(TypeError, match="reads the caption as BPE ids"):
        random_network(MaskedTokenTransformer)(text, codes)


def test_the_text_of_both_kinds_joins_and_splits_by_rows():
    ids, states = text_ids(3), text_states(3)
    assert torch.equal(text_rows(ids, [0, 0]), ids[[0, 0]])
    joined = cat_text([text_rows(states, slice(1, 3)), text_rows(states, [0])])
    assert len(joined) == 3 and torch.equal(joined.states[2], states.states[0])
    assert torch.equal(joined.mask[:2], states.mask[1:])
    assert len(text_rows(states, [])) == 0
    with pytest.raises(TypeError, match="cannot join"):
        cat_text([ids, states])


def test_config_chooses_how_the_text_is_read():
    assert CONFIG.text_conditioning == "prefix" and CONFIG.context_dim is None
    with pytest.raises(ValueError, match="needs context_dim"):
        TokenTransformerConfig(text_conditioning="cross_attention")
    with pytest.raises(ValueError, match="leave it unset"):
        TokenTransformerConfig(context_dim=384)
    with pytest.raises(ValueError, match="valid: prefix, cross_attention"):
        TokenTransformerConfig(text_conditioning="concat")
