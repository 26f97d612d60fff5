"""``make demo`` without a model: the prompts rendered exactly, judged, and tiled into a grid
whose every tile is enlarged, framed by its verdict and captioned with its prompt."""

import numpy as np
from PIL import Image

from atelier.demo import demo_prompts, main
from atelier.eval.grid import FAIL_COLOUR, PASS_COLOUR, title_height


def test_the_demo_grid_labels_every_tile(tmp_path, capsys):
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
