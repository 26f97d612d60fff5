"""GAN training: a tiny GAN fits a handful of scenes, the NaN guard stops a poisoned run and
keeps the last good checkpoint, the discriminator learns at its own rate (refused on resume when
it changes), mismatched and hard-negative captions reach the loss, sample grids and the collapse
probe are written, and `atelier train shapes-gan` runs end to end to a model that generates and
replays."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.shapes import ShapesDataset
from atelier.kinds.registry import load_text_to_image
from atelier.models.gan_discriminator import JointDiscriminator, JointDiscriminatorConfig
from atelier.models.gan_generator import FusionGenerator, GeneratorConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import Callback
from atelier.training.checkpoint import CheckpointError, checkpoint_files
from atelier.training.config import TrainConfig
from atelier.training.gan_task import CollapseProbe, GANObjective, GANTask
from atelier.training.loop import train

SCENES = ShapesDataset(4, resolution=32, seed=0)
ITEMS = [SCENES[i] for i in range(4)]
CAPTIONS = [c for _, c in ITEMS]


class Repeated:
    """The four scenes over and over (with hard negatives when asked)."""

    def __init__(self, n: int, negatives: bool = False) -> None:
        self.n, self.negatives = n, negatives

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        x, caption = ITEMS[i % 4]
        return (x, caption, (CAPTIONS[(i + 1) % 4],)) if self.negatives else (x, caption)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_task(objective=GANObjective(), **kwargs) -> GANTask:
    torch.manual_seed(0)
    config = TextEncoderConfig(kind="transformer", max_length=64, width=32, layers=1, heads=2)
    encoder = build_text_encoder(config, tokenizer=train_bpe(CAPTIONS * 3, vocab_size=300))
    generator = FusionGenerator(GeneratorConfig(resolution=32, z_dim=16, sentence_dim=32,
                                                word_dim=32, channels=8))  # fmt: skip
    discriminator = JointDiscriminator(JointDiscriminatorConfig(resolution=32, channels=8,
                                                                sentence_dim=32))  # fmt: skip
    return GANTask(generator, discriminator, encoder, objective=objective, **kwargs)


def distance_to_the_scenes(task: GANTask) -> float:
    """Mean |G(z, s_i) - x_i| over the four scenes, at fixed noise."""
    g = task.generator.eval()
    with torch.no_grad():
        z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
        x_hat = g(z, task.text_encoder.encode(CAPTIONS))
    g.train()
    return float((x_hat - torch.stack([x for x, _ in ITEMS])).abs().mean())


FAST = TrainConfig(max_steps=80, batch_size=8, lr=1e-3, betas=(0.0, 0.9), grad_clip=None,
                   checkpoint_every=1000, log_every=20)  # fmt: skip


def test_a_tiny_gan_fits_a_handful_of_scenes(tmp_path, one_thread):
    task = tiny_task()
    before = distance_to_the_scenes(task)
    train(task, Repeated(64), FAST, run_dir=tmp_path / "run")
    after = distance_to_the_scenes(task)
    assert after < 0.5 * before, (before, after)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for key in ("d_loss", "g_loss", "penalty", "d_real", "d_fake", "d_mismatch", "diversity"):
        assert all(key in row for row in rows), key


class Poison(Callback):
    """Fills one of the generator's weights with NaN after optimizer step ``at``."""

    def __init__(self, task: GANTask, at: int) -> None:
        self.task, self.at = task, at

    def on_step_end(self, state) -> None:
        if state.step == self.at:
            with torch.no_grad():
                self.task.generator.fc.weight.fill_(float("nan"))


def test_the_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, one_thread):
    task = tiny_task()
    config = TrainConfig(max_steps=10, batch_size=4, grad_clip=None, checkpoint_every=2)
    run_dir = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="non-finite training loss .* at optimizer "
                       "step 3 .* the last good checkpoint is .*step-0000002"):  # fmt: skip
        train(task, Repeated(16), config, run_dir=run_dir, callbacks=[Poison(task, 3)])
    assert [step for step, _ in checkpoint_files(run_dir)] == [2]
    with safe_open(str(checkpoint_files(run_dir)[-1][1]), framework="pt") as f:
        weights = [f.get_tensor(k) for k in f.keys() if k.startswith("model.")]
    assert all(torch.isfinite(w).all() for w in weights)
    resumed = tiny_task()  # a fresh process resumes from the good checkpoint
    result = train(resumed, Repeated(16), config, run_dir=run_dir, resume=True)
    assert result.step == 10 and np.isfinite(result.loss)


def test_the_discriminator_learns_at_its_own_rate_and_a_changed_rate_is_refused(tmp_path):
    task = tiny_task(GANObjective(discriminator_lr_scale=4.0))
    assert task.lr_scales() == {"discriminator": 4.0, "text_encoder": 4.0}
    config = TrainConfig(max_steps=1, batch_size=4, lr=1e-4, checkpoint_every=1)
    train(task, Repeated(8), config, run_dir=tmp_path / "run")
    with safe_open(str(checkpoint_files(tmp_path / "run")[-1][1]), framework="pt") as f:
        meta = f.metadata()
    groups = json.loads(meta["optim_groups"])
    names = json.loads(meta["params"])
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 4.0, 4.0]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-4, 4e-4, 4e-4])
    assert all(n.startswith("generator.") for n in names[: len(groups[0]["params"])])
    changed = tiny_task(GANObjective(discriminator_lr_scale=2.0))
    with pytest.raises(CheckpointError, match="learning-rate scales"):
        train(changed, Repeated(8), TrainConfig(max_steps=2, batch_size=4, lr=1e-4),
              run_dir=tmp_path / "run", resume=True)  # fmt: skip


def test_mismatched_and_hard_negative_captions_reach_the_loss():
    task = tiny_task(GANObjective(penalty="r1", augment=("translation", "color")))
    x = torch.stack([x for x, _ in ITEMS])
    loss, logs = task.loss((x, CAPTIONS, [CAPTIONS[1:] + CAPTIONS[:1]]), step=0)
    assert torch.isfinite(loss) and {"d_hard", "hard_won", "d_mismatch"} <= set(logs)
    # A batch of one caption has no mismatched pair (and no hard negatives were given).
    _, logs = task.loss((x, [CAPTIONS[0]] * 4), step=0)
    assert "d_mismatch" not in logs and "d_hard" not in logs


def test_sample_writes_a_grid_the_judge_and_the_collapse_probe(tmp_path):
    probe = CollapseProbe(torch.stack([x for x, _ in ITEMS] * 2), CAPTIONS * 2,
                          extractor=lambda images: images.mean((2, 3)))  # fmt: skip
    prompts = ["a red circle", "a blue square"] * 4
    task = tiny_task(sample_prompts=prompts, probe=probe)
    with torch.no_grad():
        task.sample(7, tmp_path)
    (record,) = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert record["step"] == 7 and record["n"] == 8 and 0 <= record["judge_pass"] <= 1
    assert 0 <= record["precision"] <= 1 and 0 <= record["recall"] <= 1
    assert (tmp_path / "samples-0000007.png").is_file()


TINY_GAN = ["data.n=16", "data.resolution=32", "train.batch_size=4", "train.checkpoint_every=1",
            "train.sample_every=2", "train.log_every=1", "train.ema_start=0",
            "generator.channels=4", "joint_discriminator.channels=4"]  # fmt: skip


def test_train_shapes_gan_then_resume_generate_and_replay(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    done = runner.invoke(app, ["train", "shapes-gan", *TINY_GAN, "train.max_steps=2"])
    assert done.exit_code == 0, done.output
    run_dir = tmp_path / "home" / "runs" / "shapes-gan"
    again = runner.invoke(app, ["train", "shapes-gan", *TINY_GAN, "train.max_steps=3",
                                "--resume"])  # fmt: skip
    assert again.exit_code == 0, again.output
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3] and "d_hard" in rows[0]
    probed = [json.loads(line) for line in (run_dir / "samples" / "samples.jsonl").open()]
    assert "precision" in probed[0] and "recall" in probed[0]
    # shapes-gan is shipped, so the run installs shapes-gan-local beside it.
    card = (tmp_path / "home" / "models" / "shapes-gan-local" / "README.md").read_text()
    assert "collapse probe at step 2" in card and "hard negatives per scene: 1" in card
    model = load_text_to_image("shapes-gan-local")
    assert model.resolution == 32 and model.text_config.kind == "minilm"
    out = tmp_path / "out"
    made = runner.invoke(app, ["generate", "a red circle", "--model", "shapes-gan-local", "-n", "2",
                               "-o", str(out), "--option", "truncation=0.5"])  # fmt: skip
    assert made.exit_code == 0, made.output
    first = sorted(out.glob("*.png"))[0]
    replay = runner.invoke(app, ["replay", str(first)])
    assert replay.exit_code == 0 and "pixels match" in replay.output, replay.output
