"""The shapes dataset follows the data contract, is deterministic, and caches to disk exactly."""

import numpy as np
import pytest
import torch

from atelier.data import CaptionedImages, ImageFolderDataset, tensor_to_array
from atelier.data.shapes import ShapesDataset
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt


def test_contract_and_determinism():
    ds = ShapesDataset(8, resolution=32, seed=3)
    assert isinstance(ds, CaptionedImages) and len(ds) == 8
    image, text = ds[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and image.max() == 1  # white background
    again, text2 = ShapesDataset(8, resolution=32, seed=3)[5]
    assert torch.equal(image, again) and text == text2
    other, _ = ShapesDataset(8, resolution=32, seed=4)[5]
    assert not torch.equal(image, other)
    with pytest.raises(IndexError):
        ds[8]


def test_items_are_true_to_their_captions():
    ds = ShapesDataset(30, resolution=64, seed=0)
    for i in range(len(ds)):
        image, text = ds[i]
        assert judge(tensor_to_array(image), parse_prompt(text)).passed, text


def test_disk_cache_equals_on_the_fly(tmp_path):
    live = ShapesDataset(12, resolution=64, seed=1)
    cached = ShapesDataset(12, resolution=64, seed=1, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    reread = ShapesDataset(12, resolution=64, seed=1, cache_dir=tmp_path)  # from the file
    for i in range(12):
        a, ta = live[i]
        b, tb = cached[i]
        c, tc = reread[i]
        assert torch.equal(a, b) and torch.equal(a, c) and ta == tb == tc
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="32, 64, 128"):
        ShapesDataset(4, resolution=48)
    with pytest.raises(ValueError, match="n >= 1"):
        ShapesDataset(0)


def test_exported_dataset_reads_back_through_imagefolder(tmp_path):
    from typer.testing import CliRunner

    from atelier.cli import app

    result = CliRunner().invoke(
        app, ["shapes", "dataset", "--n", "6", "--size", "32", "-o", str(tmp_path / "ds")]
    )
    assert result.exit_code == 0, result.output
    folder = ImageFolderDataset(tmp_path / "ds", resolution=32)
    assert len(folder) == 6
    source = ShapesDataset(6, resolution=32, seed=0)
    for i in range(6):
        a, ta = folder[i]
        b, tb = source[i]
        assert ta == tb and torch.equal(a, b)
    assert np.isclose(folder[0][0].mean().item(), source[0][0].mean().item())


def test_captions_list_matches_the_items(tmp_path):
    from atelier.training.recipe_data import captions

    cached = ShapesDataset(6, resolution=32, seed=3, cache_dir=tmp_path, progress=False)
    assert cached.captions == [cached[i][1] for i in range(6)] == captions(cached)
    plain = ShapesDataset(6, resolution=32, seed=3)
    assert plain.captions is None and captions(plain) == cached.captions
