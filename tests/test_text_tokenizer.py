"""The caption-trained BPE tokenizer: normalisation, round trips, window layout, files."""

import itertools
import warnings

import pytest
import torch

from atelier.text import BPETokenizer, PromptTruncatedWarning, train_bpe

COLORS = ("red", "yellow", "green", "cyan", "blue", "purple")
SHAPES = ("circle", "square", "triangle")


def shape_captions() -> list[str]:
    """54 captions in the style of the shapes world."""
    captions = []
    for i, (color, shape) in enumerate(itertools.product(COLORS, SHAPES)):
        other = f"{COLORS[(i + 2) % len(COLORS)]} {SHAPES[(i + 1) % len(SHAPES)]}"
        captions.append(f"a {color} {shape} above a {other}")
        captions.append(f"three {color} {shape}s")
        captions.append(f"a small {color} {shape} in the top left")
    return captions


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return train_bpe(shape_captions(), vocab_size=512)


def test_special_tokens_come_first_and_vocab_is_bounded(tokenizer):
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    assert 256 + 4 < tokenizer.vocab_size <= 512


def test_frequent_caption_words_become_single_tokens(tokenizer):
    # Mid-caption words: a word at the very start lacks the leading-space byte it was learned with.
    batch = tokenizer.encode(["a purple triangle above left"], max_length=8)
    assert int(batch.mask.sum()) == 2 + 5


def test_normalisation(tokenizer):
    assert tokenizer.normalize("  A  RED\tCircle\n ") == "a red circle"
    assert tokenizer.normalize("ＲＥＤ ｃｉｒｃｌｅ") == "red circle"  # NFKC folds full-width forms


@pytest.mark.parametrize(
    "text",
    [
        "a red circle above a blue square",
        "  Three GREEN   triangles!  ",
        "a small purple circle, in the top left.",
        "zebra 42 ＡＢＣ café 🙂",  # nothing here was in the training captions
    ],
)
def test_decode_inverts_encode_up_to_normalisation(tokenizer, text):
    batch = tokenizer.encode([text], max_length=64)
    assert tokenizer.decode(batch.ids[0]) == tokenizer.normalize(text)
    assert tokenizer.unk_id not in batch.ids[0].tolist()


def test_window_layout_and_mask(tokenizer):
    batch = tokenizer.encode(["a red circle", "", "three blue squares"], max_length=12)
    assert batch.ids.shape == batch.mask.shape == (3, 12)
    assert batch.ids.dtype == torch.long and batch.mask.dtype == torch.bool
    assert torch.equal(batch.mask, batch.ids != tokenizer.pad_id)
    assert batch.ids[1, :3].tolist() == [tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id]
    for ids, mask in zip(batch.ids, batch.mask, strict=True):
        length = int(mask.sum())
        assert mask[:length].all() and not mask[length:].any()
        assert ids[0] == tokenizer.bos_id and ids[length - 1] == tokenizer.eos_id
        assert (ids[1 : length - 1] > tokenizer.unk_id).all()


def test_truncation_keeps_eos_and_warns_with_prompt_and_dropped_words(tokenizer):
    prompt = "a small purple circle in the top left"
    with pytest.warns(PromptTruncatedWarning) as caught:
        batch = tokenizer.encode([prompt], max_length=6)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert repr(prompt) in message
    assert "dropped 'in the top left'" in message
    assert batch.mask.all()
    assert batch.ids[0, -1] == tokenizer.eos_id
    assert tokenizer.decode(batch.ids[0]) == "a small purple circle"


def test_warning_only_when_the_prompt_does_not_fit(tokenizer):
    prompt = "a red circle above a blue square"
    fitting = len(prompt.split()) + 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = tokenizer.encode([prompt], max_length=fitting)
    assert batch.mask.all()
    with pytest.warns(PromptTruncatedWarning, match="dropped 'square'"):
        tokenizer.encode([prompt], max_length=fitting - 1)


def test_save_load_identity(tokenizer, tmp_path):
    folder = tmp_path / "model"
    tokenizer.save(folder)
    tokenizer.save(folder)  # overwriting goes through the same temp-file-and-replace path
    assert sorted(path.name for path in folder.iterdir()) == ["tokenizer.json"]
    loaded = BPETokenizer.load(folder)
    assert loaded.vocab_size == tokenizer.vocab_size
    captions = [*shape_captions(), "zebra 42 café"]
    expected = tokenizer.encode(captions, max_length=16)
    got = loaded.encode(captions, max_length=16)
    assert torch.equal(got.ids, expected.ids) and torch.equal(got.mask, expected.mask)
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (
        folder / "tokenizer.json"
    ).read_bytes()


def test_bad_arguments_raise(tokenizer):
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe(["a red circle"], vocab_size=100)
    with pytest.raises(ValueError, match="max_length"):
        tokenizer.encode(["a red circle"], max_length=1)
