"""The fuzz suite (bench/fuzz.py) in `make test`: every CLI command and HTTP operation fed
hostile inputs ends in exit code 0-2 with one line or a 4xx, within a per-case time cap and a
4 GB address-space cap, touching no file outside its output folder."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP_MB = 4096


def _cap_memory() -> None:
    limit = MEMORY_CAP_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_hostile_inputs_never_crash_hang_or_touch_files(tmp_path):
    report = tmp_path / "fuzz.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--per-command", "10",
         "--per-operation", "12", "--seed", "0", "--case-seconds", "60", "--json", str(report)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
        preexec_fn=_cap_memory,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    data = json.loads(report.read_text())
    total = data["total"]
    assert total["crash"] == total["hang"] == total["touched"] == 0
    assert total["ok"] == total["cases"] > 280
    assert len(data["cli"]) >= 22 and len(data["http"]) >= 9  # every command and operation
    assert data["peak_mb"] < MEMORY_CAP_MB
