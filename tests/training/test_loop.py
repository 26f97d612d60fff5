"""The generic loop on a tiny MLP regression: it learns, and each mechanism does its sum right."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from atelier.training import EMA, TimestepLossLogger, TrainConfig, lr_at, precision, train
from atelier.training.checkpoint import checkpoint_files
from tests.training import RegressionData, RegressionTask, small_config


def test_loss_falls_tenfold(tmp_path):
    data, task = RegressionData(), RegressionTask()
    before = task.full_loss(data)
    result = train(task, data, small_config(max_steps=150, lr=2e-2), run_dir=tmp_path)
    assert result.step == 150 and result.stopped == "max_steps"
    assert task.full_loss(data) <= before / 10
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(10, 151, 10))
    assert {"step", "loss", "lr", "seconds", "grad_norm", "mse"} <= rows[0].keys()


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    params = []
    for name, batch_size, accum in (("accum", 4, 2), ("big", 8, 1)):
        task = RegressionTask()
        config = small_config(max_steps=3, batch_size=batch_size, grad_accum=accum)
        train(task, RegressionData(), config, run_dir=tmp_path / name)
        params.append(torch.cat([p.flatten() for p in task.net.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-5, atol=1e-6)


def test_ema_math():
    param = nn.Parameter(torch.tensor([1.0, 2.0]))
    ema = EMA([param], decay=0.9, start=1)
    with torch.no_grad():
        param.copy_(torch.tensor([3.0, 4.0]))
    ema.update(1)  # step <= start: a copy, not an average
    torch.testing.assert_close(ema.shadow[0], torch.tensor([3.0, 4.0]))
    with torch.no_grad():
        param.copy_(torch.tensor([13.0, -6.0]))
    ema.update(2)  # 0.9 * shadow + 0.1 * param
    torch.testing.assert_close(ema.shadow[0], torch.tensor([4.0, 3.0]))
    with ema.swapped():
        torch.testing.assert_close(param.detach(), torch.tensor([4.0, 3.0]))
    torch.testing.assert_close(param.detach(), torch.tensor([13.0, -6.0]))


def test_warmup_schedule(tmp_path):
    config = small_config(max_steps=6, lr=0.4, warmup_steps=4, log_every=1)
    expected = [0.1, 0.2, 0.3, 0.4, 0.4, 0.4]
    assert [lr_at(step, config) for step in range(6)] == pytest.approx(expected)
    assert lr_at(0, small_config(lr=0.4)) == 0.4
    train(RegressionTask(), RegressionData(), config, run_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["lr"] for row in rows] == pytest.approx(expected)


class NanAtStep(RegressionTask):
    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.bad_step = bad_step

    def loss(self, batch, step):
        loss, logs = super().loss(batch, step)
        return (loss * math.nan if step == self.bad_step else loss), logs


def test_nan_loss_raises_without_checkpoint(tmp_path):
    task = NanAtStep(bad_step=3)
    with pytest.raises(FloatingPointError, match="optimizer step 3"):
        train(task, RegressionData(), small_config(checkpoint_every=2), run_dir=tmp_path)
    assert [step for step, _ in checkpoint_files(tmp_path)] == [2]
    assert all(torch.isfinite(p).all() for p in task.net.parameters())
    with pytest.raises(FloatingPointError, match="optimizer step 0"):
        train(NanAtStep(0), RegressionData(), small_config(), run_dir=tmp_path / "first")
    assert checkpoint_files(tmp_path / "first") == []


def test_max_minutes_stops_with_checkpoint(tmp_path):
    config = small_config(max_steps=1000, checkpoint_every=500, max_minutes=0.3 / 60)
    result = train(RegressionTask(sleep=0.03), RegressionData(), config, run_dir=tmp_path)
    assert result.stopped == "max_minutes" and 0 < result.step < 1000
    assert checkpoint_files(tmp_path) == [(result.step, result.checkpoint)]
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == result.step


class TimestepTask(RegressionTask):
    def loss(self, batch, step):
        x, y = batch
        t = (x[:, 0].abs() * 400).long().clamp(max=999)  # (B,) stand-in timesteps
        per_sample = ((self.net(x) - y) ** 2).mean(dim=1)  # (B,)
        return per_sample.mean(), {"t": t, "loss": per_sample.detach()}


def test_timestep_buckets_reach_the_log(tmp_path):
    config = small_config(max_steps=4, log_every=2)
    callback = TimestepLossLogger(n_train=1000, n_buckets=4)
    train(TimestepTask(), RegressionData(), config, run_dir=tmp_path, callbacks=[callback])
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4]
    assert any(key.startswith("loss_t0-249") for key in rows[0])
    assert "t" not in rows[0]


class SamplingRegression(RegressionTask):
    def sample(self, step, out_dir):
        assert not self.net.training
        (out_dir / f"{step}.txt").write_text(str(self.net[0].bias.sum().item()))


def test_samples_and_guards(tmp_path):
    config = small_config(max_steps=4, sample_every=2, ema_decay=0.5)
    task = SamplingRegression()
    train(task, RegressionData(), config, run_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["2.txt", "4.txt"]
    assert task.net.training
    with pytest.raises(ValueError, match="resume=True"):
        train(SamplingRegression(), RegressionData(), config, run_dir=tmp_path)
    with pytest.raises(ValueError, match="sample"):
        train(RegressionTask(), RegressionData(), config, run_dir=tmp_path / "other")


@pytest.mark.parametrize(
    "bad", [{"batch_size": 0}, {"lr": -1.0}, {"autocast": "fp16"}, {"ema_decay": 1.0}]
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_bf16_autocast_trains(tmp_path, monkeypatch):
    # Emulated bf16 (this CPU may lack it) still trains; the loop warns that it may be slow.
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    data, task = RegressionData(), RegressionTask()
    before = task.full_loss(data)
    with pytest.warns(UserWarning, match="emulated"):
        train(task, data, small_config(max_steps=20, autocast="bf16"), run_dir=tmp_path)
    assert task.full_loss(data) < before


def test_cosine_schedule_decays_to_the_floor_at_max_steps():
    config = small_config(max_steps=10, lr=1.0, warmup_steps=2, lr_schedule="cosine",
                          min_lr_ratio=0.1)  # fmt: skip
    lrs = [lr_at(step, config) for step in range(12)]
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    # Halfway through the decay (step 6 of 2..10) the cosine is at the mean of peak and floor.
    assert lrs[6] == pytest.approx(0.55)
    assert lrs[10] == pytest.approx(0.1) and lrs[11] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    with pytest.raises(ValueError, match="lr_schedule"):
        small_config(lr_schedule="step")
    with pytest.raises(ValueError, match="min_lr_ratio"):
        small_config(min_lr_ratio=1.5)


def test_cpu_ledger_counts_each_session_and_survives_a_kill(tmp_path):
    import json

    from atelier.training.callbacks import CPULedger

    ledger = CPULedger()
    config = small_config(max_steps=3, checkpoint_every=1)
    train(RegressionTask(sleep=0.0), RegressionData(), config, run_dir=tmp_path, callbacks=[ledger])
    first = json.loads((tmp_path / "cpu_seconds.json").read_text())
    assert len(first) == 1 and first[0] >= 0 and ledger.total == sum(first)
    # A session killed after a checkpoint: begin and checkpoint ran, train_end never did.
    killed = CPULedger()
    killed.on_train_begin(tmp_path, 3, config)
    from atelier.training.callbacks import process_cpu_seconds

    began = process_cpu_seconds()
    while process_cpu_seconds() - began < 0.3:  # burn a little CPU
        sum(i * i for i in range(10_000))
    killed.on_checkpoint(4, tmp_path / "x")
    after = json.loads((tmp_path / "cpu_seconds.json").read_text())
    assert len(after) == 2 and after[0] == first[0] and after[1] > 0


def test_cpu_ledger_counts_the_preparation_before_training(tmp_path):
    import json

    from atelier.training.callbacks import CPULedger

    ledger = CPULedger(preparation=2.5)  # e.g. captions a frozen encoder read before step 0
    config = small_config(max_steps=2, checkpoint_every=1)
    train(RegressionTask(sleep=0.0), RegressionData(), config, run_dir=tmp_path, callbacks=[ledger])
    (entry,) = json.loads((tmp_path / "cpu_seconds.json").read_text())
    assert 2.5 <= entry < 2.5 + 5 and ledger.total == entry
