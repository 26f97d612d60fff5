"""Token transformers: the KV-cached sampler equals the uncached one token for token, with known
tokens too (and its logits the full pass's), DALL-E's attention is causal and MaskGIT's is not,
configs refuse bad sizes."""

import pytest
import torch

from atelier.models.token_transformer import (
    AutoregressiveTransformer,
    MaskedTokenTransformer,
    TokenTransformerConfig,
)
from atelier.pipelines.token2image import cached_logits, uncached_logits
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
