"""``make demo`` without a model: the prompts rendered exactly, judged, and tiled into a grid
whose every tile is enlarged, framed by its verdict and captioned with its prompt."""

import numpy as np
from PIL import Image

from atelier.demo import demo_prompts, main
from atelier.eval.grid import FAIL_COLOUR, PASS_COLOUR, title_height


def test_the_demo_grid_labels_every_tile(tmp_path, capsys, monkeypatch):
    import atelier.demo as demo

    # The shapes alone: no real-set model (mnist-pixel ships; its rows have their own test).
    monkeypatch.setattr(demo, "DIGIT_MODEL", "no-such-model")
    monkeypatch.setattr(demo, "EMOJI_MODEL", "no-such-model")
    main(["-o", str(tmp_path), "--model", "no-such-model"])
    printed = capsys.readouterr().out
    picks = demo_prompts()
    assert "rendered exactly" in printed and all(bp.prompt in printed for bp in picks)
    grid = Image.open(tmp_path / "grid.png")
    rows = -(-len(picks) // 7)
    assert grid.width > 7 * 128 and grid.height > title_height() + rows * 128  # 64 px tiles, 2x
    frame = tuple(np.asarray(grid.convert("RGB"))[title_height() + 4, 4])
    assert frame in (PASS_COLOUR, FAIL_COLOUR)  # the first tile framed by its verdict
    assert len(list(tmp_path.glob("*-*.png"))) == len(picks)


def test_the_real_sets_models_join_the_grid_when_present(tmp_path, monkeypatch, capsys):
    """With a digits model, its judge and an emoji model present (tiny stand-ins here), the
    demo draws every digit, reads each back, and draws the emoji names, under the shapes."""
    import atelier.demo as demo
    from atelier.kinds.diffusion import save_model
    from atelier.kinds.digit_classifier import save_digit_classifier
    from atelier.models.digit_classifier import DigitClassifier, DigitClassifierConfig
    from tests.pipelines.conftest import tiny_model

    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    model, judge = tmp_path / "tiny", tmp_path / "judge"
    save_model(tiny_model(), model, card="# tiny\n")
    tiny = DigitClassifierConfig(channels=(8, 8, 16), feature_dim=16)
    save_digit_classifier(DigitClassifier(tiny), judge, card="# j\n")
    monkeypatch.setattr(demo, "DIGIT_MODEL", "no-such-model")
    monkeypatch.setattr(demo, "EMOJI_MODEL", "no-such-model")
    main(["-o", str(tmp_path / "plain"), "--model", "no-such-model"])
    plain = Image.open(tmp_path / "plain" / "grid.png")
    capsys.readouterr()
    monkeypatch.setattr(demo, "DIGIT_MODEL", str(model))
    monkeypatch.setattr(demo, "DIGIT_JUDGE", str(judge))
    monkeypatch.setattr(demo, "EMOJI_MODEL", str(model))
    main(["-o", str(tmp_path / "real"), "--model", "no-such-model"])
    printed = capsys.readouterr().out
    assert printed.count("(read as ") == 10
    rows = [line.split()[:2] for line in printed.splitlines() if "(read as " in line]
    assert rows == [[str(d), "seen" if d % 2 == 0 else "held_out"] for d in range(10)]
    assert "banana, fruit, food (held-out)" in printed and "and 20 real-picture prompts" in printed
    grid = Image.open(tmp_path / "real" / "grid.png")
    assert grid.height > plain.height + 2 * 64 and grid.width >= plain.width
    assert len(list((tmp_path / "real").glob("digits-*.png"))) == 10
    assert len(list((tmp_path / "real").glob("emoji-*.png"))) == 10
