"""Textual inversion's new words: training changes only the new rows, prompts without the word
encode as before bit for bit, and words that cannot be learned are refused naming the fix."""

from __future__ import annotations

import pytest
import torch

from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.tokenizer import train_bpe
from atelier.text.trainable import TrainableTextEncoder
from atelier.text.transformer import TransformerTextConfig

PROMPTS = ["a red sks in the top left", "a blue circle and a green square"]


def trainable() -> TrainableTextEncoder:
    captions = ["a red circle", "a blue square in the top left", "a green triangle"]
    tokenizer = train_bpe(captions * 20,
                          vocab_size=300)  # fmt: skip
    torch.manual_seed(0)
    config = TransformerTextConfig(vocab_size=tokenizer.vocab_size, max_length=16, width=32,
                                   layers=1, heads=2)  # fmt: skip
    return TrainableTextEncoder(tokenizer, config).eval()


@pytest.fixture(scope="module")
def minilm() -> MiniLMTextEncoder:
    return MiniLMTextEncoder(max_length=24, hidden_layer=-2)


@pytest.mark.parametrize("which", ["minilm", "trainable"])
def test_training_changes_only_the_new_rows(which, request):
    encoder = request.getfixturevalue("minilm") if which == "minilm" else trainable()
    encoder.requires_grad_(False)
    table = encoder._token_table()
    rows = table.weight.detach().clone()
    without = encoder.encode([PROMPTS[1]]).states.clone()
    learned = encoder.add_tokens({"sks": encoder.word_embedding("shape")})
    start = learned.vectors.detach().clone()
    learned.requires_grad_(True)
    optimizer = torch.optim.Adam(learned.parameters(), lr=0.05)
    for _ in range(3):
        loss = encoder.encode(PROMPTS).states.square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    learned.requires_grad_(False)
    assert torch.equal(table.weight, rows)  # the V trained rows never move
    assert not torch.equal(learned.vectors, start)  # the new row does
    assert torch.equal(encoder.encode([PROMPTS[1]]).states, without)
    # The word is one token, read from the new row.
    assert encoder._word_ids("sks") == [table.num_embeddings]
    saved = learned.as_dict()
    assert list(saved) == ["sks"] and saved["sks"].shape == (table.embedding_dim,)


def test_a_known_word_or_another_width_is_refused(minilm):
    with pytest.raises(ValueError, match="already a word of this text encoder's vocabulary"):
        minilm.add_tokens({"red": torch.zeros(384)})
    with pytest.raises(ValueError, match="embeds tokens in 384 dimensions: it was learned for "
                                         "another text encoder"):  # fmt: skip
        minilm.add_tokens({"zqx": torch.zeros(128)})
    with pytest.raises(ValueError, match="one lower-case word"):
        minilm.add_tokens({"two words": torch.zeros(384)})


def test_unknown_embedding_and_lora_names_are_refused(tmp_path, monkeypatch):
    from atelier.kinds.adapters import resolve_embedding, resolve_lora

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no embedding 'nope'.*none installed yet"):
        resolve_embedding("nope")
    with pytest.raises(FileNotFoundError, match="no LoRA 'nope'.*installed one"):
        resolve_lora("nope")
