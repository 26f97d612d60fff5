"""Checkpoints: bit-exact round trips, exact resumes (also after SIGKILL), fallback, mismatch."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from atelier.training import EMA, TrainConfig
from atelier.training.callbacks import Callback
from atelier.training.checkpoint import (
    CheckpointError,
    TrainingState,
    checkpoint_files,
    latest_good_checkpoint,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from tests.training import RegressionData, RegressionTask, run, small_config

ROOT = Path(__file__).resolve().parents[2]


def _state(task: RegressionTask, config: TrainConfig) -> TrainingState:
    names = [f"net.{name}" for name, _ in task.net.named_parameters()]
    params = list(task.net.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas)
    ema = EMA(params, decay=0.9)
    return TrainingState(config, task.modules(), names, optimizer, ema, world_size=1)


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = latest_good_checkpoint(run_dir)
    assert checkpoint is not None
    return {k: v for k, v in checkpoint.tensors.items() if k.split(".")[0] in {"model", "ema"}}


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_round_trip_is_bit_exact(tmp_path):
    config = small_config()
    data, task = RegressionData(), RegressionTask()
    state = _state(task, config)
    for step in range(1, 3):
        task.loss((data.x[:8], data.y[:8]), step)[0].backward()
        state.optimizer.step()
        state.ema.update(step)
    rng = {"torch.0": torch.get_rng_state()}
    path = save_checkpoint(tmp_path, state, step=2, seconds=1.5, rng_states=rng, extra={})
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == 2

    fresh = RegressionTask(hidden=16)
    with torch.no_grad():
        for p in fresh.net.parameters():
            p.zero_()
    restored = _state(fresh, config)
    checkpoint = load_checkpoint(path)
    restore_checkpoint(checkpoint, restored)
    assert checkpoint.step == 2 and checkpoint.seconds == 1.5
    assert torch.equal(checkpoint.tensors["rng.torch.0"], rng["torch.0"])
    _assert_equal(task.net.state_dict(), fresh.net.state_dict())
    for a, b in zip(state.ema.shadow, restored.ema.shadow):
        assert torch.equal(a, b)
    saved, loaded = state.optimizer.state_dict(), restored.optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for index, entries in saved["state"].items():
        _assert_equal(entries, loaded["state"][index])


def test_resume_equals_uninterrupted_run(tmp_path):
    run(tmp_path / "whole", max_steps=12, checkpoint_every=4)
    run(tmp_path / "split", max_steps=6, checkpoint_every=4, log_every=1)
    result = run(tmp_path / "split", max_steps=12, checkpoint_every=4, log_every=1, resume=True)
    assert result.step == 12
    _assert_equal(_final(tmp_path / "whole"), _final(tmp_path / "split"))
    rows = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in rows] == list(range(1, 13))


_CHILD = """
import sys
from tests.training import run
run(sys.argv[1], sleep=0.02, max_steps=40, checkpoint_every=4, log_every=1)
"""


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "killed")],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while len(checkpoint_files(tmp_path / "killed")) < 2:  # let it get well under way
            assert child.poll() is None and time.monotonic() < deadline, "child never checkpointed"
            time.sleep(0.01)
        time.sleep(0.05)  # somewhere mid-interval or mid-write, on purpose not aligned
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    killed_at = max(step for step, _ in checkpoint_files(tmp_path / "killed"))
    assert 0 < killed_at < 40

    result = run(tmp_path / "killed", max_steps=40, checkpoint_every=4, log_every=1, resume=True)
    run(tmp_path / "whole", max_steps=40, checkpoint_every=4, log_every=1)
    assert result.step == 40
    _assert_equal(_final(tmp_path / "whole"), _final(tmp_path / "killed"))
    assert not list((tmp_path / "killed" / "checkpoints").glob(".*.tmp"))
    rows = (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in rows] == list(range(1, 41))


# Kills a run's process again and again: each segment is a fresh process (forked from this
# server, which imported torch once; a new interpreter would spend 2 s of its life importing).
_FORK_SERVER = """
import os, signal, sys, time
import torch._dynamo  # noqa: F401  (AdamW imports it on first use)
from atelier.training.callbacks import Callback
from tests.training import run

run_dir, total, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for line in sys.stdin:  # a segment per line: how long after its first step it is killed
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)

        class SayStep(Callback):
            def on_step_end(self, state):
                os.write(write_end, b"%d\\n" % state.step)

        run(run_dir, sleep=0.01, max_steps=total, checkpoint_every=every, log_every=1,
            resume=True, callbacks=[SayStep()])
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as steps:
        first = steps.readline()
        time.sleep(float(line))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        said = [first, *steps.read().split()]
    print(int(first), int(said[-1]), flush=True)  # the segment's first and last step
"""


class _FirstStep(Callback):
    def __init__(self) -> None:
        self.step: int | None = None

    def on_step_end(self, state) -> None:
        self.step = state.step if self.step is None else self.step


def test_twenty_sigkills_each_lose_at_most_one_checkpoint_interval(tmp_path):
    """SIGKILL a run 20 times at moments a seeded RNG picks (0 to 150 ms after a segment's first
    step: mid-step, mid-checkpoint-write, between the two files), resuming each time. After
    every kill the newest checkpoint loads without skipping a file, the step the process had
    reached is at most one checkpoint interval past it, and the resumed run starts right after
    it; the finished run is bit for bit the uninterrupted one."""
    every, total, kills = 3, 400, 20
    rng = random.Random(0)
    killed = tmp_path / "killed"
    lost, started, reached = [], 0, 0
    with (tmp_path / "server.err").open("w") as errors:
        server = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, str(killed), str(total), str(every)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            for _ in range(kills):
                server.stdin.write(f"{rng.uniform(0, 0.15)}\n")
                server.stdin.flush()
                ready, _, _ = select.select([server.stdout], [], [], 60)
                line = server.stdout.readline() if ready else ""
                assert line, (tmp_path / "server.err").read_text()[-2000:]
                first, reached = map(int, line.split())
                assert first == started + 1, "the segment did not resume from the newest"
                assert reached < total, "the run finished before all kills; raise total"
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # atomic writes: the newest file is whole
                    checkpoint = latest_good_checkpoint(killed)
                started = checkpoint.step if checkpoint is not None else 0
                lost.append(reached - started)
                assert 0 <= reached - started <= every, (reached, started)
        finally:
            server.stdin.close()
            server.kill()
            server.wait()

    first = _FirstStep()
    result = run(killed, max_steps=total, checkpoint_every=every, log_every=1, resume=True,
                 callbacks=[first])  # fmt: skip
    assert first.step == started + 1 and result.step == total
    print(f"\nkill loop: {len(lost)} of {kills} resumed; steps lost per kill {lost}; "
          f"max {max(lost)}, mean {sum(lost) / len(lost):.2f} (checkpoint every {every} steps; "
          f"the last kill at step {reached})")  # fmt: skip
    run(tmp_path / "whole", max_steps=total, checkpoint_every=every, log_every=1)
    _assert_equal(_final(tmp_path / "whole"), _final(killed))
    assert not list((killed / "checkpoints").glob(".*.tmp"))
    rows = (killed / "log.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in rows] == list(range(1, total + 1))


def test_corrupt_newest_falls_back_to_previous(tmp_path):
    run(tmp_path, max_steps=6, checkpoint_every=3)
    good = _final(tmp_path)
    newest = tmp_path / "checkpoints" / "step-0000006.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint .*step-0000006"):
        assert latest_good_checkpoint(tmp_path).step == 3
    with pytest.warns(UserWarning, match="skipping unreadable"):
        result = run(tmp_path, max_steps=6, checkpoint_every=3, resume=True)
    assert result.step == 6
    _assert_equal(good, _final(tmp_path))


def test_all_corrupt_raises_naming_each_file(tmp_path):
    run(tmp_path, max_steps=2, checkpoint_every=2)
    (tmp_path / "checkpoints" / "step-0000002.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint among 1 .*step-0000002"):
        latest_good_checkpoint(tmp_path)


def test_mismatched_config_or_shapes_error(tmp_path):
    run(tmp_path, max_steps=2, checkpoint_every=2)
    with pytest.raises(ValueError, match="batch_size: checkpoint 8, this run 4"):
        run(tmp_path, max_steps=4, batch_size=4, resume=True)
    checkpoint = latest_good_checkpoint(tmp_path)
    narrow = RegressionTask(hidden=8)
    with pytest.raises(ValueError, match=r"model.net.0.weight: checkpoint shape \(16, 4\)"):
        restore_checkpoint(checkpoint, _state(narrow, checkpoint_config(checkpoint)))


def checkpoint_config(checkpoint) -> TrainConfig:
    return TrainConfig(**checkpoint.metadata["config"])
