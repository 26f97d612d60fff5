"""`atelier data emoji` on a fake package: RGBA over white, captions, a corrupt PNG skipped
with a warning, held-out names with all their skin tones, and malformed emoji.json refused."""

import json

import numpy as np
import pytest
from PIL import Image

from atelier.data.emoji import MAX_CAPTION_CHARS, build_emoji, emoji_caption, parse_emoji
from atelier.data.folder import ImageFolderDataset
from atelier.data.images import ImageLoadWarning
from atelier.data.npm import PackageError
from tests.data.fakes import emoji_entries, fake_emoji, held_out_code

HELD, KEPT = held_out_code(True), held_out_code(False)


@pytest.fixture
def package(tmp_path):
    return fake_emoji(tmp_path / "pkg", emoji_entries(HELD, KEPT))


def rows(folder):
    return [json.loads(line) for line in (folder / "metadata.jsonl").open()]


def test_builds_train_and_held_out_names_skipping_a_corrupt_png(package, tmp_path):
    out = tmp_path / "emoji"
    with pytest.warns(ImageLoadWarning, match=r"skipped 1 \(truncated\): 2764.png"):
        report = build_emoji(package, out)
    # Apple and its two tones train; the wave and its tone are held out; 2764 is corrupt and
    # 2765 has no Google image.
    assert (report.train, report.held_out, report.num_skipped) == (3, 2, 1)
    assert {r["unified"] for r in rows(out / "heldout")} == {HELD, f"{HELD}-1F3FF"}
    split = json.loads((out / "split.json").read_text())
    assert split["held_out_names"] == ["waving hand sign"]
    assert split["skipped"] == {"truncated": ["2764.png"]}
    assert "Apache License 2.0" in (out / "NOTICE").read_text()
    assert (out / "LICENSE").is_file() and (out / "README.md").is_file()
    data = ImageFolderDataset(out / "train", resolution=64)
    assert len(data) == 3 and not data.report.converted


def test_rgba_is_composited_over_white(package, tmp_path):
    out = tmp_path / "emoji"
    with pytest.warns(ImageLoadWarning):
        build_emoji(package, out)
    image = np.asarray(Image.open(out / "train" / f"images/{KEPT.lower()}.png"))
    assert image.shape == (64, 64, 3)
    assert image[0, 0].tolist() == [255, 255, 255]  # transparent corner
    assert image[20, 32].tolist() == [220, 30, 30]  # opaque disc
    assert image[32, 32].tolist() == [237, 142, 142]  # alpha 128: (c * 128 + 255 * 127) / 255
    with pytest.warns(ImageLoadWarning):
        build_emoji(package, tmp_path / "small", size=32)
    assert Image.open(tmp_path / "small" / "train" / f"images/{KEPT.lower()}.png").size == (32, 32)


def test_captions_from_name_short_names_keywords_and_tones():
    apple, wave = emoji_entries(HELD, KEPT)[:2]
    assert emoji_caption(apple) == "red apple, apple, fruit, food"
    assert emoji_caption(apple, "1F3FB-1F3FF") == (
        "red apple, apple, fruit, food, light skin tone, dark skin tone"
    )
    # Without keywords, the subcategory's words, the narrower first.
    assert emoji_caption(wave) == "waving hand sign, wave, open, fingers, hand"
    long = dict(apple, keywords=[f"word{i}" for i in range(100)])
    caption = emoji_caption(long)
    assert len(caption) <= MAX_CAPTION_CHARS and caption.endswith(tuple("0123456789"))


def test_the_split_is_the_same_on_every_run(package, tmp_path):
    with pytest.warns(ImageLoadWarning):
        build_emoji(package, tmp_path / "a")
    with pytest.warns(ImageLoadWarning):
        build_emoji(package, tmp_path / "b")
    for name in ("split.json", "train/metadata.jsonl", "heldout/metadata.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def entry(**changes):
    base = {"name": "X", "unified": "1F600", "image": "1f600.png", "short_names": ["x"]}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"not": "a list"}, "non-empty list"),
        ([], "non-empty list"),
        (["text"], "entry 0: not an object"),
        ([entry(name="")], "entry 0: no name"),
        ([entry(), entry(image="../../etc.png")], "entry 1: image '../../etc.png'"),
        ([entry(unified="smile")], "unified 'smile' is not code points"),
        ([entry(short_names="x")], "short_names must be a list of strings"),
        ([entry(), entry()], "1F600 appears twice"),
        ([entry(skin_variations={"dark": {}})], "skin variation 'dark'"),
        ([entry(skin_variations={"1F3FB": {"unified": "1F600-1F3FB"}})], "has no image"),
    ],
)
def test_malformed_emoji_json_is_refused(data, message):
    with pytest.raises(PackageError, match=message):
        parse_emoji(data)


def test_a_malformed_package_writes_nothing(package, tmp_path):
    (package / "emoji.json").write_text("[{")
    with pytest.raises(PackageError, match="not readable JSON"):
        build_emoji(package, tmp_path / "emoji")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]
