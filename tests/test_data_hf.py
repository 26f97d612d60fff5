"""HFDataset over small in-memory Hugging Face datasets built here, never downloaded."""

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atelier.data import CaptionedImages, HFDataset, ImageLoadWarning, tensor_to_array

datasets = pytest.importorskip("datasets")


def _png(image: Image.Image) -> dict[str, object]:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _dataset(images: list[object], captions: list[object], *, text: str = "text") -> object:
    return datasets.Dataset.from_dict({"image": images, text: captions}).cast_column(
        "image", datasets.Image()
    )


def _colour(dataset: HFDataset, index: int) -> np.ndarray:
    image, _ = dataset[index]
    assert image.shape == (3, dataset.resolution, dataset.resolution)
    assert image.dtype == torch.float32 and image.min() >= -1 and image.max() <= 1
    return tensor_to_array(image)[4, 4].astype(int)


def test_rows_become_captioned_tensors_without_warning() -> None:
    red = Image.new("RGB", (20, 12), "red")
    data = _dataset([_png(red), _png(Image.new("RGB", (9, 9), "blue"))], ["a red", " a blue\n"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = HFDataset(data, resolution=8)
    assert isinstance(dataset, CaptionedImages)
    assert len(dataset) == 2 and dataset.text_column == "text"
    assert [dataset[i][1] for i in range(2)] == ["a red", "a blue"]
    assert np.abs(_colour(dataset, 0) - (255, 0, 0)).max() <= 1
    assert np.abs(_colour(dataset, 1) - (0, 0, 255)).max() <= 1


def test_bad_rows_are_skipped_and_reported_once() -> None:
    images = [
        _png(Image.new("RGB", (8, 8), "red")),
        {"bytes": b"not an image", "path": None},
        _png(Image.new("LA", (8, 8), (0, 128))),
        None,
        _png(Image.new("RGB", (8, 8), "red")),
    ]
    data = _dataset(images, ["red", "garbage", "half-transparent black", "no image", None])
    with pytest.warns(ImageLoadWarning) as record:
        dataset = HFDataset(data, resolution=8)
    assert len(record) == 1
    message = str(record[0].message)
    assert "row 1" in message and "row 3" in message and "row 4" in message
    assert dataset.report.skipped == {
        "unreadable": ["row 1"],
        "missing_file": ["row 3"],
        "missing_caption": ["row 4"],
    }
    assert dataset.report.converted == {"LA": ["row 2"]}
    assert [dataset[i][1] for i in range(len(dataset))] == ["red", "half-transparent black"]
    assert np.abs(_colour(dataset, 1) - 127).max() <= 1


def test_images_stored_as_paths_are_read_from_disk(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "lime").save(tmp_path / "lime.png")
    paths = [{"bytes": None, "path": str(tmp_path / name)} for name in ("lime.png", "gone.png")]
    data = _dataset(paths, ["lime", "gone"])
    with pytest.warns(ImageLoadWarning, match="row 1"):
        dataset = HFDataset(data, resolution=8, cache=False)
    assert dataset.report.skipped == {"missing_file": ["row 1"]}
    assert np.abs(_colour(dataset, 0) - (0, 255, 0)).max() <= 1


def test_uncached_items_equal_cached_items() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (30, 20, 3), dtype=np.uint8))
    data = _dataset([_png(noise)], ["noise"])
    cached, uncached = HFDataset(data, resolution=8), HFDataset(data, resolution=8, cache=False)
    assert torch.equal(cached[0][0], uncached[0][0]) and cached[0][1] == uncached[0][1]


def test_caption_column_is_auto_detected_or_named() -> None:
    data = _dataset([_png(Image.new("RGB", (8, 8)))], ["from caption"], text="caption")
    assert HFDataset(data, resolution=8)[0][1] == "from caption"
    both = data.add_column("text", ["from text"]).add_column("alt", ["from alt"])
    assert HFDataset(both, resolution=8).text_column == "text"
    assert HFDataset(both, resolution=8, text_column="alt")[0][1] == "from alt"


def test_missing_or_wrong_columns_are_clear_errors() -> None:
    data = _dataset([_png(Image.new("RGB", (8, 8)))], ["x"], text="label")
    with pytest.raises(ValueError, match=r"no caption column.*'text', 'caption'.*'label'"):
        HFDataset(data)
    with pytest.raises(ValueError, match="no text column 'prompt'"):
        HFDataset(data, text_column="prompt")
    with pytest.raises(ValueError, match="no image column 'img'.*image_column="):
        HFDataset(data, image_column="img", text_column="label")
    numbers = data.add_column("score", [1.0])
    with pytest.raises(ValueError, match="'score' holds .*not strings"):
        HFDataset(numbers, text_column="score")
    with pytest.raises(ValueError, match="not images.*cast_column"):
        HFDataset(numbers, image_column="label", text_column="label")


def test_dataset_dict_and_empty_dataset_are_clear_errors() -> None:
    data = _dataset([_png(Image.new("RGB", (8, 8)))], ["x"])
    with pytest.raises(ValueError, match=r"splits \['train'\].*dataset\['train'\]"):
        HFDataset(datasets.DatasetDict({"train": data}))
    with pytest.raises(ValueError, match="no rows"):
        HFDataset(data.select([]))
    with pytest.raises(ValueError, match="no usable images"):
        HFDataset(_dataset([{"bytes": b"", "path": None}], ["empty"]))


def test_missing_datasets_library_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        HFDataset(object())
