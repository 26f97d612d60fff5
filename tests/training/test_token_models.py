"""Token-model training: tiny transformers overfit a handful of token grids, caption dropout and
MaskGIT's training masks, and `atelier train shapes-dalle | shapes-maskgit` end to end (token
cache, resume, the installed folder generating, the card counting the tokenizer's CPU time)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.registry import load_text_to_image
from atelier.kinds.tokenizer import TrainedTokenizer, save_tokenizer
from atelier.models.token_transformer import (
    AutoregressiveTransformer,
    MaskedTokenTransformer,
    TokenTransformerConfig,
)
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.text.tokenizer import train_bpe
from atelier.training.token_tasks import (
    AutoregressiveTask,
    MaskedTokenTask,
    TokenObjective,
    random_masks,
)

CAPTIONS = ["a red circle", "a blue square", "two green triangles", "a purple circle"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("network_class, task_class", [
    (AutoregressiveTransformer, AutoregressiveTask), (MaskedTokenTransformer, MaskedTokenTask),
])  # fmt: skip
def test_a_tiny_model_overfits_a_handful_of_token_grids(network_class, task_class, one_thread):
    """On 4 captioned 4x4 grids of 32 codes the loss falls from about ln 32 = 3.5 to a twentieth."""
    bpe = train_bpe(CAPTIONS * 3, vocab_size=300)
    config = TokenTransformerConfig(text_vocab=bpe.vocab_size, text_length=8, codebook_size=32,
                                    grid=4, width=64, layers=2, heads=4)  # fmt: skip
    torch.manual_seed(0)
    task = task_class(network_class(config), bpe, objective=TokenObjective(p_uncond=0.0))
    codes = torch.randint(0, 32, (4, 4, 4))
    optimizer = torch.optim.AdamW(task.network.parameters(), lr=3e-3)
    losses = []
    for step in range(250):
        loss, _ = task.loss((codes, CAPTIONS), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = losses[0], sum(losses[-20:]) / 20
    assert first > 3.0 and last * 20 < first, (first, last)


def test_captions_are_dropped_to_the_empty_caption():
    bpe = train_bpe(CAPTIONS * 3, vocab_size=300)
    config = TokenTransformerConfig(text_vocab=bpe.vocab_size, text_length=8, codebook_size=32,
                                    grid=4, width=16, layers=1, heads=2)  # fmt: skip
    task = AutoregressiveTask(AutoregressiveTransformer(config), bpe,
                              objective=TokenObjective(p_uncond=0.5))  # fmt: skip
    torch.manual_seed(0)
    text, codes = task.inputs((torch.zeros(400, 4, 4, dtype=torch.long), ["a red circle"] * 400))
    empty = bpe.encode([""], max_length=8).ids[0]
    dropped = (text == empty).all(1).float().mean().item()
    assert 0.4 < dropped < 0.6 and codes.shape == (400, 16)
    with pytest.raises(ValueError, match="p_uncond"):
        TokenObjective(p_uncond=1.0)


def test_training_masks_follow_the_cosine_schedule():
    torch.manual_seed(0)
    masks = random_masks(4000, 64)
    counts = masks.sum(1).float()
    assert counts.min() >= 1 and counts.max() <= 64
    # E[cos(pi r / 2)] = 2 / pi over r ~ U(0, 1).
    assert counts.mean().item() / 64 == pytest.approx(2 / torch.pi, abs=0.02)


TINY_RECIPE = [
    "data.n=16",
    "data.resolution=32",
    "tokenizer_model=tiny-tok",
    "train.batch_size=4",
    "train.checkpoint_every=1",
    "train.sample_every=2",
    "train.log_every=1",
    "train.ema_start=1",
    "token_transformer.width=16",
    "token_transformer.layers=1",
    "token_transformer.heads=2",
    "token_transformer.text_length=48",
]


@pytest.mark.parametrize("recipe, kind", [("shapes-dalle", "dalle"), ("shapes-maskgit", "maskgit")])
def test_train_a_token_model_resume_and_generate(tmp_path, monkeypatch, recipe, kind):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    torch.manual_seed(0)
    config = TokenizerConfig(block_channels=(8, 16, 16), groups=8, embed_dim=8, codebook_size=32)
    tokenizer = TrainedTokenizer("tiny-tok", ImageTokenizer(config).eval(), resolution=32)
    card = "# tiny-tok\n\n- Training CPU time: 0.50 h (user + system, all sessions)\n"
    save_tokenizer(tokenizer, tmp_path / "models" / "tiny-tok", card=card)
    for steps, extra in ((2, []), (3, ["--resume"])):
        result = CliRunner().invoke(
            app, ["train", recipe, *TINY_RECIPE, f"train.max_steps={steps}", *extra]
        )
        assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / recipe
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert (run_dir / "samples" / "samples-0000002.png").is_file()
    assert len(list((tmp_path / "data").glob("tokens-*.safetensors"))) == 1  # encoded once
    folder = tmp_path / "models" / recipe
    card = (folder / "README.md").read_text()
    assert "its image tokenizer tiny-tok: 0.50 CPU-h" in card and "8x8 codes of 32" in card
    model = load_text_to_image(recipe)
    assert model.family.kind == kind and model.resolution == 32
    (image,) = model(["a red circle"], seeds=[0])
    assert image.size == (32, 32)
    missing = CliRunner().invoke(app, ["train", recipe, "tokenizer_model=nope", "--out",
                                       str(tmp_path / "other")])  # fmt: skip
    assert missing.exit_code != 0 and "train it first" in missing.output
