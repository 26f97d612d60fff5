"""Data parallel training: two gloo ranks under torchrun end equal to each other and to one
process seeing the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from atelier.training import train
from atelier.training.checkpoint import latest_good_checkpoint
from tests.training import RegressionData, RegressionTask, small_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = dict(max_steps=4, batch_size=8, grad_accum=2, grad_clip=0.5, ema_decay=0.9)


class RecordingTask(RegressionTask):
    """Remembers which samples it saw, to show each rank trains on its own shard."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def loss(self, batch, step):
        self.seen.append(batch[0][:, 0].clone())  # (B_rank,), first input coordinate
        return super().loss(batch, step)


def _params(task: RecordingTask) -> dict[str, torch.Tensor]:
    found = {name: p.detach().clone() for name, p in task.net.named_parameters()}
    return {**found, "seen": torch.stack(task.seen)}  # (steps * grad_accum, B_rank)


def test_two_ranks_match_each_other_and_one_process(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "tests.training.test_ddp",
            str(tmp_path / "ddp"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0 = load_file(tmp_path / "ddp" / "rank0.safetensors")
    rank1 = load_file(tmp_path / "ddp" / "rank1.safetensors")
    seen0, seen1 = rank0.pop("seen"), rank1.pop("seen")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    single = RecordingTask()
    train(single, RegressionData(), small_config(**CONFIG), run_dir=tmp_path / "single")
    expected = _params(single)
    assert seen0.shape == seen1.shape == (8, 4)
    assert torch.equal(torch.cat([seen0, seen1], dim=1), expected.pop("seen"))
    for name, value in expected.items():
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)

    checkpoint = latest_good_checkpoint(tmp_path / "ddp")
    assert checkpoint.step == 4 and checkpoint.metadata["world_size"] == 2
    assert {"rng.torch.0", "rng.torch.1"} <= checkpoint.tensors.keys()
    assert (tmp_path / "ddp" / "log.jsonl").exists()


if __name__ == "__main__":  # one rank, started by torchrun in the test above
    run_dir = Path(sys.argv[1])
    task = RecordingTask()
    if int(os.environ["RANK"]) == 1:
        with torch.no_grad():  # rank 0's weights must win the initial broadcast
            for p in task.net.parameters():
                p.add_(1.0)
    train(task, RegressionData(), small_config(**CONFIG), run_dir=run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(_params(task), run_dir / f"rank{os.environ['RANK']}.safetensors")
