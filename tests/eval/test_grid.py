"""The shared labelled grid: tiles enlarged by whole factors with nearest-neighbour resampling,
captions under them, pass / fail frames, row labels and a title."""

import numpy as np
import pytest
from PIL import Image

from atelier.eval.grid import FAIL_COLOUR, PAD, PASS_COLOUR, Tile, auto_scale, labelled_grid, wrap
from atelier.eval.grid import font as grid_font


def checker(side: int) -> np.ndarray:
    """(side, side, 3): red and blue pixels alternating, which any blur would mix."""
    image = np.zeros((side, side, 3), np.uint8)
    odd = (np.add.outer(np.arange(side), np.arange(side)) % 2).astype(bool)
    image[odd], image[~odd] = (220, 20, 20), (20, 20, 220)
    return image


def test_tiles_are_enlarged_nearest_neighbour_to_be_seen():
    assert [auto_scale(s) for s in (16, 32, 64, 128, 256)] == [8, 4, 2, 1, 1]
    grid = np.asarray(labelled_grid([Tile(checker(64))], cols=1))
    tile = grid[PAD : PAD + 128, PAD : PAD + 128]
    np.testing.assert_array_equal(tile, checker(64).repeat(2, axis=0).repeat(2, axis=1))


def test_captions_frames_labels_and_title_have_their_places():
    tiles = [Tile(checker(32), ("a red circle", "PASS · seed 0"), True),
             Tile(checker(32), ("a blue square", "FAIL · seed 1"), False),
             Tile(checker(32), ("a green triangle",), True)]  # fmt: skip
    bare = labelled_grid(tiles, cols=2)
    labelled = labelled_grid(tiles, cols=2, title="sweep", row_labels=["steps=10", "steps=20"])
    assert labelled.width > bare.width and labelled.height > bare.height  # label column, title
    pixels = np.asarray(bare)
    assert tuple(pixels[PAD, PAD]) == PASS_COLOUR  # the first tile's frame
    cell_w = bare.width // 2
    assert tuple(pixels[PAD, cell_w + PAD]) == FAIL_COLOUR
    cell_h = bare.height // 2
    caption = pixels[PAD + 128 + 6 : cell_h, :cell_w].min(axis=-1)  # under the first tile
    assert caption.min() < 100  # dark text
    assert (pixels[cell_h:, cell_w:] == 255).all()  # the empty place of a 3-tile, 2-wide grid


def test_long_captions_wrap_to_the_tile_width():
    face = grid_font()
    lines = wrap("a small cyan circle to the left of a large yellow triangle", 100, face)
    assert len(lines) > 1 and all(face.getlength(line) <= 100 for line in lines)
    one = labelled_grid([Tile(checker(64), ("a red circle",))], cols=1)
    many = labelled_grid([Tile(checker(64), (" ".join(["a red circle"] * 6),))], cols=1)
    assert many.width == one.width and many.height > one.height


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="at least one tile"):
        labelled_grid([], cols=2)
    with pytest.raises(ValueError, match="row labels"):
        labelled_grid([Tile(checker(8))], cols=1, row_labels=["a", "b"])
    assert labelled_grid([Tile(Image.new("L", (8, 8)))], cols=1).mode == "RGB"
