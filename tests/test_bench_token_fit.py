"""bench/token_fit.py: the teacher-forced bits per image token it reports are the training loss
of the same pictures and captions (in bits), and a checkpoint's transformer weights load into the
model it measures."""

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import torch

from atelier.models.token_transformer import AutoregressiveTransformer, TokenTransformerConfig
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.text.tokenizer import train_bpe
from atelier.training.token_tasks import AutoregressiveTask, TokenObjective

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("token_fit", ROOT / "bench" / "token_fit.py")
token_fit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(token_fit)

CAPTIONS = ["a red circle", "a blue square", "two green triangles", "a purple circle", "a cat"]


def tiny_model() -> SimpleNamespace:
    torch.manual_seed(0)
    bpe = train_bpe(CAPTIONS * 3, vocab_size=300)
    config = TokenTransformerConfig(text_vocab=bpe.vocab_size, text_length=8, codebook_size=32,
                                    grid=4, width=32, layers=1, heads=2)  # fmt: skip
    tokenizer = ImageTokenizer(TokenizerConfig(block_channels=(8, 16, 16), groups=8, embed_dim=8,
                                               codebook_size=32)).eval()  # fmt: skip
    return SimpleNamespace(network=AutoregressiveTransformer(config).eval(), text_encoder=None,
                           text_tokenizer=bpe, tokenizer=SimpleNamespace(tokenizer=tokenizer))


def test_bits_per_token_is_the_training_loss_in_bits_over_every_batch():
    model = tiny_model()
    images = torch.rand(5, 3, 16, 16) * 2 - 1
    measured = token_fit.bits_per_token(model, images, CAPTIONS, batch=2)  # batches of 2, 2, 1
    task = AutoregressiveTask(model.network, model.text_tokenizer,
                              objective=TokenObjective(p_uncond=0.0))  # fmt: skip
    with torch.no_grad():
        codes = model.tokenizer.tokenizer.encode(images)
        loss, logs = task.loss((codes, CAPTIONS), 0)
    assert math.isclose(measured, logs["bits_per_token"], rel_tol=1e-4), (measured, logs)
    assert 0 < measured < math.log2(32) * 2  # an untrained model is near uniform


def test_a_checkpoints_transformer_loads_into_the_model(tmp_path, monkeypatch):
    model = tiny_model()
    trained = AutoregressiveTransformer(model.network.config)
    weights = {f"ema.transformer.{k}": v for k, v in trained.state_dict().items()}
    checkpoint = SimpleNamespace(step=4500, tensors=weights)
    monkeypatch.setattr(token_fit, "load_checkpoint", lambda path: checkpoint)
    assert token_fit.load_transformer(model, tmp_path / "step.safetensors") == 4500
    for key, value in trained.state_dict().items():
        assert torch.equal(model.network.state_dict()[key], value), key
