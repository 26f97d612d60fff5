"""``atelier --help`` and a mistyped flag answer without importing torch: the command modules
load the models, pipelines and torch inside their commands. Checked by what a fresh process
has imported, not by timing (which depends on the machine's load)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atelier.cli import app

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "scipy", "transformers", "safetensors")
# Runs the command as the console script does, then names the heavy modules it imported.
SCRIPT = """
import sys
from atelier.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("imported:", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def imported_by(*args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("imported:"), done.stdout + done.stderr
    return last.removeprefix("imported:").strip()


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["generate", "--help"],
        ["generate", "a red circle", "--no-such-flag"],
        ["generate", "a red circle", "--steps", "many"],
        ["img2img", "--help"],
        ["shapes", "render", "--help"],
    ],
)
def test_help_and_argument_errors_import_no_torch(args):
    assert imported_by(*args) == ""


def test_train_help_still_names_every_recipe():
    from atelier.training.recipes import RECIPES

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for name in RECIPES:
        assert name in result.output
