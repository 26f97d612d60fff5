"""Image tokenizer training: a tiny one overfits shapes images, the task's GAN and temperature,
the folder round trip through the registry, a config that does not match its weights, and
``atelier train shapes-vqgan`` end to end with resume."""

import json
import math
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.shapes import ShapesDataset
from atelier.kinds import autoencoder
from atelier.kinds import tokenizer as tokenizer_kind
from atelier.kinds.registry import describe, load_model
from atelier.kinds.tokenizer import TrainedTokenizer, save_tokenizer
from atelier.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.training.checkpoint import latest_good_checkpoint, tensors_with_prefix
from atelier.training.recipes import RecipeError, get_recipe
from atelier.training.runners import tokenizer as tokenizer_runner
from atelier.training.tokenizer_task import (
    TokenizerLossConfig,
    TokenizerTask,
    gumbel_temperature,
)

TINY = TokenizerConfig(block_channels=(16, 32, 32), groups=8, embed_dim=8, codebook_size=32,
                       dead_after=10)  # fmt: skip


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["vq", "gumbel"])
def test_tiny_tokenizer_overfits_a_handful_of_shapes_images(kind, one_thread):
    """The round trip's L1 error on 4 fixed 32 px images falls at least 8x in 150 steps."""
    dataset = ShapesDataset(4, resolution=32)
    x = torch.stack([dataset[i][0] for i in range(4)])  # (4, 3, 32, 32)
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(replace(TINY, quantizer=kind))
    task = TokenizerTask(tokenizer, TokenizerLossConfig(temperature_steps=100))
    optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=3e-3)

    def round_trip_error() -> float:
        tokenizer.eval()
        with torch.no_grad():
            error = (tokenizer.round_trip(x) - x).abs().mean().item()
        tokenizer.train()
        return error

    before = round_trip_error()
    for step in range(150):
        loss, logs = task.loss((x, []), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = round_trip_error()
    assert after * 8 <= before, (before, after)
    assert 0 < logs["usage"] <= 1 and 1 <= logs["perplexity"] <= TINY.codebook_size


def test_task_logs_the_gan_and_the_temperature():
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(replace(TINY, quantizer="gumbel"))
    discriminator = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=2, norm="group"))
    config = TokenizerLossConfig(adversarial_weight=0.1, adversarial_start=1, usage_window=2,
                                 temperature_steps=4)  # fmt: skip
    task = TokenizerTask(tokenizer, config, discriminator=discriminator)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    _, before = task.loss((x, []), 0)
    assert "d_loss" not in before and before["tau"] == 1.0
    loss, logs = task.loss((x, []), 4)
    loss.backward()
    assert logs["tau"] == pytest.approx(1 / 16) and logs["adv_weight"] > 0
    assert {"rec", "q_loss", "kl", "usage", "perplexity", "usage_window", "d_loss"} <= set(logs)
    assert discriminator.main[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs a discriminator"):
        TokenizerTask(tokenizer, config)


def test_the_discriminator_loss_is_scaled_in_the_sum():
    """Its gradients shrink by the scale (AdamW's steps do not), the tokenizer's stay put."""
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    grads = {}
    for scale in (1.0, 0.01):
        torch.manual_seed(0)
        tokenizer = ImageTokenizer(TINY)
        discriminator = PatchDiscriminator(DiscriminatorConfig(channels=8, layers=2, norm="group"))
        config = TokenizerLossConfig(adversarial_weight=0.1, discriminator_loss_scale=scale)
        torch.manual_seed(1)
        loss, _ = TokenizerTask(tokenizer, config, discriminator=discriminator).loss((x, []), 0)
        loss.backward()
        grads[scale] = (discriminator.main[0].weight.grad, tokenizer.decoder.conv_out.weight.grad)
    assert torch.allclose(grads[0.01][0], 0.01 * grads[1.0][0], atol=1e-7)
    assert torch.allclose(grads[0.01][1], grads[1.0][1])


def test_gumbel_temperature_anneals_by_a_cosine():
    def tau(step):
        return gumbel_temperature(step, start=1.0, end=1 / 16, steps=100)

    assert tau(0) == 1.0 and tau(100) == tau(500) == pytest.approx(1 / 16)
    assert tau(50) == pytest.approx((1 + 1 / 16) / 2)
    assert all(tau(s) > tau(s + 1) for s in range(100))
    with pytest.raises(ValueError, match="temperature_steps"):
        TokenizerLossConfig(temperature_steps=0)
    with pytest.raises(ValueError, match="temperature_end"):
        TokenizerLossConfig(temperature_end=math.inf)


def trained_folder(tmp_path, quantizer="vq"):
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(replace(TINY, quantizer=quantizer))
    tokenizer.train()
    tokenizer(torch.rand(2, 3, 16, 16) * 2 - 1)  # one step of the EMA codebook
    model = TrainedTokenizer("tiny-tok", tokenizer.eval(), resolution=16)
    return save_tokenizer(model, tmp_path / "tiny-tok", card="# tiny-tok\n"), tokenizer


@pytest.mark.parametrize("quantizer", ["vq", "gumbel"])
def test_save_and_load_through_the_registry(tmp_path, quantizer):
    folder, tokenizer = trained_folder(tmp_path, quantizer)
    loaded = load_model(folder, want=tokenizer_kind.KIND)
    assert isinstance(loaded, TrainedTokenizer) and loaded.grid == 4
    assert loaded.tokenizer.config == tokenizer.config
    for key, value in tokenizer.state_dict().items():
        assert torch.equal(loaded.tokenizer.state_dict()[key], value), key
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.tokenizer.encode(x), tokenizer.encode(x))
    listed = describe(folder)
    assert listed.kind == "tokenizer" and listed.facts.resolution == 16
    assert (
        listed.facts.title
        == f"image tokenizer ({'VQ' if quantizer == 'vq' else 'Gumbel'}, 32 codes)"
    )
    # `atelier export --half` writes float16 weights that load back to the same codes.
    half = tmp_path / "half"
    result = CliRunner().invoke(app, ["export", str(folder), "-o", str(half), "--half"])
    assert result.exit_code == 0, result.output
    again = load_model(half)
    assert again.tokenizer.encoder.conv_in.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="is a image tokenizer, not a autoencoder"):
        load_model(folder, want=autoencoder.KIND)


def test_a_config_that_does_not_match_the_weights_is_a_clear_error(tmp_path):
    folder, _ = trained_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["tokenizer"]["codebook_size"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match config.json .*shape mismatch"):
        load_model(folder)
    config["tokenizer"] |= {"codebook_size": 32, "quantizer": "lookup"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a valid tokenizer config .*quantizer"):
        load_model(folder)
    config["tokenizer"]["quantizer"] = "gumbel"  # same sizes, another quantizer's tensors
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing: quantizer.proj"):
        load_model(folder)


def test_vq_recipe_refuses_several_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RecipeError, match="one process"):
        tokenizer_runner.run(get_recipe("shapes-vqgan"), tmp_path, resume=False, data_dir=None,
                             command="atelier train shapes-vqgan")  # fmt: skip


TINY_RECIPE = [
    "data.n=16",
    "train.batch_size=4",
    "train.checkpoint_every=1",
    "train.sample_every=2",
    "train.log_every=1",
    "tokenizer.block_channels=[8,16,16]",
    "tokenizer.groups=8",
    "tokenizer.codebook_size=16",
    "tokenizer_loss.adversarial_start=1",
    "discriminator.channels=8",
]


def test_train_vqgan_resume_and_load(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    # --install: the run replaces the shipped shapes-vqgan under its own name in this home.
    for steps, extra in ((2, ["--install"]), (3, ["--resume", "--install"])):
        result = CliRunner().invoke(
            app, ["train", "shapes-vqgan", *TINY_RECIPE, f"train.max_steps={steps}", *extra]
        )
        assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "shapes-vqgan"
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert {"usage", "usage_window", "perplexity", "commitment", "d_loss"} <= set(rows[-1])
    assert (run_dir / "samples" / "recon-0000002.png").is_file()
    # The EMA codebook and its statistics are checkpointed, so a resumed run continues them.
    saved = tensors_with_prefix(latest_good_checkpoint(run_dir), "model.tokenizer.quantizer.")
    assert {"codebook", "cluster_size", "embed_sum", "unused_steps", "initialised"} <= set(saved)
    card = (tmp_path / "models" / "shapes-vqgan" / "README.md").read_text()
    assert "16x16 codes per 64 px image" in card and "codebook usage:" in card
    assert "judge pass rate on round trips" in card and "trained 3 steps" in card
    loaded = load_model("shapes-vqgan")
    assert loaded.grid == 16 and loaded.tokenizer.config.codebook_size == 16
