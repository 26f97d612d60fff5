"""The real sets' feature network (models/class_features.py): FID reads the last stage pooled
over positions (Inception's pool3), the heads read the linear layer after it."""

import pytest
import torch

from atelier.models.class_features import ClassFeatureConfig, ClassFeatureNet


def net() -> ClassFeatureNet:
    torch.manual_seed(0)
    return ClassFeatureNet(ClassFeatureConfig(image_size=16, channels=(8, 8, 16), feature_dim=6,
                                              classes=(5, 3))).eval()  # fmt: skip


def test_fid_features_are_the_last_stage_averaged_over_positions():
    model, x = net(), torch.rand(3, 3, 16, 16) * 2 - 1
    features = model(x)
    assert features.shape == (3, 16)  # C3, not feature_dim
    torch.testing.assert_close(features, model.stages(x).mean((2, 3)))
    torch.testing.assert_close(model(x[[2, 0, 1]]), features[[2, 0, 1]])


def test_heads_read_the_linear_layer_and_give_one_logit_row_per_class():
    model, x = net(), torch.rand(2, 3, 16, 16) * 2 - 1
    names, categories = model.logits(x)
    assert names.shape == (2, 5) and categories.shape == (2, 3)
    hidden = model.features(model.stages(x))
    torch.testing.assert_close(names, model.heads[0](hidden))


def test_wrong_size_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="resize to 16 px"):
        net()(torch.zeros(1, 3, 32, 32))
