"""ImageFolderDataset: both caption layouts, and every kind of bad file skipped or converted."""

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atelier.data import CaptionedImages, ImageFolderDataset, ImageLoadWarning, tensor_to_array

GOOD = (0, 160, 0)


def _encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _noise(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _sidecar_folder(root: Path, files: dict[str, bytes]) -> Path:
    """``files`` plus a good ``good.png``, each captioned by a sidecar .txt naming it."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in {"good.png": _encode(Image.new("RGB", (8, 8), GOOD)), **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.with_suffix(".txt").write_text(f"caption of {name}\n")
    return root


def _load_warning_once(root: Path, **kwargs: object) -> tuple[ImageFolderDataset, str]:
    with pytest.warns(ImageLoadWarning) as record:
        dataset = ImageFolderDataset(root, **kwargs)
    assert len(record) == 1, [str(w.message) for w in record]
    return dataset, str(record[0].message)


def _pixels(dataset: ImageFolderDataset, caption: str) -> np.ndarray:
    """The uint8 (R, R, 3) image whose caption is ``caption``, checking the tensor contract."""
    for image, text in (dataset[i] for i in range(len(dataset))):
        assert image.shape == (3, dataset.resolution, dataset.resolution)
        assert image.dtype == torch.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
        if text == caption:
            return tensor_to_array(image).astype(int)
    raise AssertionError(f"no item captioned {caption!r}")


def _truncated(fmt: str, keep: float) -> bytes:
    data = _encode(_noise(30), fmt)  # 900 pixels: under the max_pixels=1000 used below
    return data[: int(len(data) * keep)]


SKIPPED_CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "garbage": ("garbage.png", lambda: b"this is not an image at all" * 8, "unreadable"),
    "truncated-png": ("cut.png", lambda: _truncated("PNG", 0.5), "truncated"),
    "truncated-jpeg": ("cut.jpg", lambda: _truncated("JPEG", 0.75), "truncated"),
    "truncated-jpeg-header": ("stub.jpg", lambda: _truncated("JPEG", 0.2), "truncated"),
    "zero-byte": ("empty.jpg", lambda: b"", "empty"),
    "oversized": ("huge.png", lambda: _encode(Image.new("RGB", (64, 64))), "too_large"),
}


@pytest.mark.parametrize("case", SKIPPED_CASES)
def test_bad_file_is_skipped_with_its_reason(tmp_path: Path, case: str) -> None:
    name, build, reason = SKIPPED_CASES[case]
    root = _sidecar_folder(tmp_path / "images", {f"sub/{name}": build()})
    dataset, message = _load_warning_once(root, resolution=8, max_pixels=1000)
    assert len(dataset) == 1
    assert dataset.report.skipped == {reason: [f"sub/{name}"]}
    assert dataset.report.converted == {}
    assert f"sub/{name}" in message and "kept 1 of 2" in message
    assert np.abs(_pixels(dataset, "caption of good.png") - GOOD).max() <= 1


def test_pil_decompression_bomb_error_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PIL's own limit applies even when max_pixels allows more; its error must not escape.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    root = _sidecar_folder(tmp_path, {"bomb.png": _encode(Image.new("RGB", (20, 20)))})
    dataset, message = _load_warning_once(root, resolution=8)
    assert dataset.report.skipped == {"too_large": ["bomb.png"]}
    assert "bomb.png" in message


def _converted(tmp_path: Path, name: str, data: bytes, *, resolution: int) -> np.ndarray:
    root = _sidecar_folder(tmp_path, {name: data})
    dataset, message = _load_warning_once(root, resolution=resolution)
    assert len(dataset) == 2 and dataset.report.skipped == {}
    assert name in message
    return _pixels(dataset, f"caption of {name}")


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    data = _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    pixels = _converted(tmp_path, "scan.jpg", data, resolution=8)
    assert np.abs(pixels - (255, 0, 0)).max() <= 3


def test_la_png_is_composited_over_white(tmp_path: Path) -> None:
    data = _encode(Image.new("LA", (16, 16), (0, 128)))
    pixels = _converted(tmp_path, "ghost.png", data, resolution=8)
    assert np.abs(pixels - 127).max() <= 1


def test_rgba_png_is_composited_over_white(tmp_path: Path) -> None:
    data = _encode(Image.new("RGBA", (16, 16), (0, 0, 255, 64)))
    pixels = _converted(tmp_path, "tint.png", data, resolution=8)
    assert np.abs(pixels - (191, 191, 255)).max() <= 1


def test_palette_png_with_transparency_is_composited_over_white(tmp_path: Path) -> None:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (8, 0, 16, 16))  # right half opaque blue, left half transparent index 0
    pixels = _converted(tmp_path, "icon.png", _encode(image, transparency=0), resolution=16)
    assert np.abs(pixels[:, :6] - 255).max() <= 1
    assert np.abs(pixels[:, 10:] - (0, 0, 255)).max() <= 1


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.repeat(np.array([0, 1000, 25700, 65535], dtype=np.uint16), 4)
    image = Image.fromarray(values[:, None].repeat(16, axis=1))
    assert image.mode == "I;16"
    pixels = _converted(tmp_path, "depth.png", _encode(image), resolution=16)
    # 65535 maps to 255 through x / 257; clipping would give 255 for both middle bands.
    assert pixels[1::4, 8, 0].tolist() == [0, 4, 100, 255]


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: Path) -> None:
    upright = Image.new("RGB", (24, 32), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 24, 16))  # red top half
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how a sideways phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    root = _sidecar_folder(tmp_path, {"phone.jpg": _encode(stored, "JPEG", exif=exif, quality=95)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = ImageFolderDataset(root, resolution=16)
    pixels = _pixels(dataset, "caption of phone.jpg")
    assert pixels[2, 8, 0] > 200 and pixels[2, 8, 2] < 60
    assert pixels[13, 8, 2] > 200 and pixels[13, 8, 0] < 60


def test_clean_sidecar_folder_loads_without_warning(tmp_path: Path) -> None:
    root = _sidecar_folder(tmp_path, {"a/b/red.jpg": _encode(Image.new("RGB", (30, 20), "red"))})
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "junk.png").write_bytes(b"hidden, never read")
    (root / "notes.md").write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = ImageFolderDataset(root, resolution=12)
    assert isinstance(dataset, CaptionedImages)
    assert dataset.caption_source == "sidecar"
    assert len(dataset) == 2
    assert dataset[0][1] == "caption of a/b/red.jpg"  # sorted by path; the newline is stripped
    assert np.abs(_pixels(dataset, "caption of a/b/red.jpg") - (255, 0, 0)).max() <= 3


def test_sidecar_caption_problems_are_missing_captions(tmp_path: Path) -> None:
    root = _sidecar_folder(tmp_path, {"blank.png": _encode(Image.new("RGB", (8, 8)))})
    (root / "blank.txt").write_text("  \n")
    (root / "latin1.png").write_bytes(_encode(Image.new("RGB", (8, 8))))
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "orphan.png").write_bytes(_encode(Image.new("RGB", (8, 8))))
    dataset, message = _load_warning_once(root, resolution=8)
    assert len(dataset) == 1
    assert dataset.report.skipped == {"missing_caption": ["blank.png", "latin1.png", "orphan.png"]}
    assert "orphan.png" in message


def test_metadata_jsonl_with_subfolders_and_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "cat.png").write_bytes(_encode(Image.new("RGB", (10, 10), "blue")))
    (tmp_path / "dog.png").write_bytes(_encode(Image.new("RGB", (10, 10), "red")))
    (tmp_path / "mute.png").write_bytes(_encode(Image.new("RGB", (10, 10))))
    (tmp_path / "unlisted.png").write_bytes(_encode(Image.new("RGB", (10, 10))))
    (tmp_path / "dog.txt").write_text("a sidecar, ignored when metadata.jsonl exists")
    lines = [
        json.dumps({"file_name": "dog.png", "text": "a red dog"}),
        "{not json",
        json.dumps({"text": "no file name"}),
        "",
        json.dumps({"file_name": "cats/cat.png", "caption": " a blue cat "}),
        json.dumps({"file_name": "gone.png", "text": "deleted since"}),
        json.dumps({"file_name": "mute.png", "text": ""}),
        json.dumps({"file_name": "../outside.png", "text": "escapes the folder"}),
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    dataset, message = _load_warning_once(tmp_path, resolution=8)
    assert dataset.caption_source == "metadata"
    assert [dataset[i][1] for i in range(len(dataset))] == ["a red dog", "a blue cat"]
    assert {reason: sorted(names) for reason, names in dataset.report.skipped.items()} == {
        "bad_metadata": [
            "metadata.jsonl line 2",
            "metadata.jsonl line 3",
            "metadata.jsonl line 8 (../outside.png)",
        ],
        "missing_file": ["gone.png"],
        "missing_caption": ["mute.png", "unlisted.png"],
    }
    assert "gone.png" in message and "metadata.jsonl line 2" in message
    assert np.abs(_pixels(dataset, "a blue cat") - (0, 0, 255)).max() <= 1


def test_caption_source_can_be_forced_and_is_validated(tmp_path: Path) -> None:
    root = _sidecar_folder(tmp_path, {})
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "good.png", "text": "meta"}))
    assert ImageFolderDataset(root, resolution=8)[0][1] == "meta"
    assert ImageFolderDataset(root, resolution=8, caption_source="sidecar")[0][1] == (
        "caption of good.png"
    )
    with pytest.raises(ValueError, match="'auto', 'metadata', 'sidecar'"):
        ImageFolderDataset(root, caption_source="json")  # type: ignore[arg-type]
    (root / "metadata.jsonl").unlink()
    with pytest.raises(ValueError, match="no metadata.jsonl"):
        ImageFolderDataset(root, caption_source="metadata")


def test_uncached_items_equal_cached_items(tmp_path: Path) -> None:
    root = _sidecar_folder(tmp_path, {"noise.png": _encode(_noise(40))})
    cached = ImageFolderDataset(root, resolution=16)
    uncached = ImageFolderDataset(root, resolution=16, cache=False)
    for i in range(2):
        assert cached[i][1] == uncached[i][1]
        assert torch.equal(cached[i][0], uncached[i][0])
    (root / "noise.png").write_bytes(b"")
    with pytest.raises(RuntimeError, match="rebuild the dataset"):
        uncached[1]


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match="no images in"):
        ImageFolderDataset(tmp_path)


def test_folder_of_only_bad_images_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.txt").write_text("a caption")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no usable images") as error:
        ImageFolderDataset(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "a.png" in message and "b.jpg" in message
    assert "metadata.jsonl" in message and ".txt file" in message  # the fix, in both layouts


def test_bad_resolution_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="resolution"):
        ImageFolderDataset(_sidecar_folder(tmp_path, {}), resolution=0)
