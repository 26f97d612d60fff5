"""The shapes feature network: cell targets, a tiny training run, the folder round trip."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.shapes import ShapesDataset
from atelier.kinds.features import load_feature_net
from atelier.models.shapes_features import EMPTY, cell_targets
from atelier.shapes.parse import parse_prompt
from atelier.shapes.world import ObjectSpec, SceneSpec


def test_cell_targets_encode_colour_shape_size_per_cell():
    spec = SceneSpec((ObjectSpec("red", "circle", "small", (0, 0)),
                      ObjectSpec("cyan", "triangle", "large", (2, 1))))  # fmt: skip
    t = cell_targets(spec)
    assert t[0] == 0 and t[7] == (3 * 3 + 2) * 2 + 1  # cyan is colour 3, triangle shape 2
    assert (t[[1, 2, 3, 4, 5, 6, 8]] == EMPTY).all()
    with pytest.raises(ValueError, match="full spec"):
        cell_targets(parse_prompt("a red circle"))


def test_dataset_spec_matches_the_rendered_example():
    data = ShapesDataset(5, resolution=32, seed=3)
    for i in range(5):
        assert data.spec(i) == data.example(i)[2]


def test_train_features_then_load(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    tiny = ["data.n=32", "train.batch_size=8", "train.max_steps=2", "train.warmup_steps=0",
            "features.channels=[8,8,8]", "features.feature_dim=16"]  # fmt: skip
    result = CliRunner().invoke(app, ["train", "shapes-features", *tiny])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "models" / "shapes-features" / "README.md").read_text()
    assert "cell accuracy" in card
    net = load_feature_net("shapes-features")
    assert not net.training
    out = net(torch.zeros(3, 3, 32, 32))
    assert out.shape == (3, 16) and np.isfinite(out.detach().numpy()).all()
    with pytest.raises(ValueError, match="resize to 32 px"):
        net(torch.zeros(1, 3, 64, 64))
