import pytest
import torch

from atelier.training import precision
from atelier.training.config import TrainConfig
from atelier.training.precision import use_bf16

CPU = torch.device("cpu")


def test_off_never_autocasts(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert use_bf16("off", CPU) is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert use_bf16("auto", CPU) is native


def test_explicit_bf16_is_honoured_with_a_warning_where_emulated(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="train.autocast=auto"):
        assert use_bf16("bf16", CPU) is True
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert use_bf16("bf16", CPU) is True


def test_other_devices_are_not_native():
    assert precision.native_bf16(torch.device("meta")) is False


def test_unknown_value_is_refused():
    with pytest.raises(ValueError, match="'auto'"):
        use_bf16("fp16", CPU)
    with pytest.raises(ValueError, match="autocast"):
        TrainConfig(autocast="fp16")  # type: ignore[arg-type]
    assert TrainConfig(autocast="auto").autocast == "auto"
