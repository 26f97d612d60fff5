"""The CLI's exit (cli/exit.py): skipping torch's teardown must keep what a normal exit keeps:
the status, every printed line, the atexit handlers' work, and a live worker thread's work."""

import subprocess
import sys
from pathlib import Path

import pytest

from atelier.cli.exit import exit_code

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import atexit, sys, threading, time
import torch  # teardown is skipped only once torch is in
from atelier.cli.exit import exit_now, can_skip_teardown
out = sys.argv[1]
atexit.register(lambda: open(out + ".atexit", "w").write("ran"))
if sys.argv[2] == "thread":
    def work():
        time.sleep(0.5)
        open(out + ".thread", "w").write("done")
    threading.Thread(target=work).start()
print("skip:", can_skip_teardown())
print("x" * 100000)  # more than a pipe's buffer: must all arrive
exit_now(int(sys.argv[3]))
"""


def run(tmp_path, mode, status):
    out = tmp_path / "o"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), mode, str(status)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    return done, out


@pytest.mark.parametrize("status", [0, 3])
def test_exit_now_keeps_status_output_and_atexit(tmp_path, status):
    done, out = run(tmp_path, "plain", status)
    assert done.returncode == status
    lines = done.stdout.splitlines()
    assert lines[0] == "skip: True" and lines[1] == "x" * 100000
    assert Path(str(out) + ".atexit").read_text() == "ran"


def test_exit_now_waits_for_a_live_worker_thread(tmp_path):
    done, out = run(tmp_path, "thread", 0)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "skip: False"  # falls back to the normal exit
    assert Path(str(out) + ".thread").read_text() == "done"
    assert Path(str(out) + ".atexit").read_text() == "ran"


def test_exit_code_follows_system_exit(capsys):
    assert exit_code(None) == 0
    assert exit_code(2) == 2
    assert exit_code("refused: no such model") == 1
    assert "refused: no such model" in capsys.readouterr().err


def test_cli_status_through_main(tmp_path):
    # An argument error through the console entry point still exits 2 with its message.
    done = subprocess.run(
        [sys.executable, "-m", "atelier", "generate", "a red circle", "--steps", "many"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "steps" in done.stderr


def test_every_command_is_listed_by_one_line():
    """The list of commands shows each docstring's first paragraph joined into one line, so it
    wraps at the terminal's width instead of at the docstring's line breaks."""
    from atelier.cli import app

    def commands(group):
        yield from group.registered_commands
        for sub in group.registered_groups:
            yield from commands(sub.typer_instance)

    listed = list(commands(app))
    assert len(listed) > 20
    for info in listed:
        assert info.short_help and "\n" not in info.short_help and "  " not in info.short_help
        first = info.callback.__doc__.strip().split("\n\n")[0]
        assert info.short_help == " ".join(first.split())
