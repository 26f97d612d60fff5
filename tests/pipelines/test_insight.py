"""atelier explain (filmstrip + GIF: a diffusion model's reverse process, a token model's grid
filling in, each column captioned with its step) and atelier inspect (the tree)."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.eval.explain import FILMSTRIP_COLS, filmstrip, reverse_process
from atelier.eval.grid import PAD, title_height
from atelier.eval.inspect import count, tree
from atelier.eval.token_filling import CHECKER, token_filling
from atelier.kinds.registry import load_model
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions
from tests.pipelines.token_models import tiny_token_model


def caption_height(strip: Image.Image, tile_rows: int) -> int:
    """Rows of ``strip`` below its tiles, where the captions are; they must hold dark text."""
    below = np.asarray(strip.convert("L"))[tile_rows:]
    assert below.min() < 100, "the caption row holds no text"
    return below.shape[0]


def test_reverse_process_has_a_frame_per_step_ending_at_the_image(tiny_model_dir):
    model = load_model(tiny_model_dir)
    options = SamplingOptions(steps=3, guidance=2.0, sampler="euler")
    image, frames = reverse_process(model.pipeline(), "a red circle", seed=0, options=options)
    assert [f.step for f in frames] == [0, 1, 2]
    assert all(f.x_t.shape == (32, 32, 3) and f.x_0.shape == (32, 32, 3) for f in frames)
    assert frames[0].sigma > frames[-1].sigma
    assert frames[0].caption == ("step 1/3", f"sigma {frames[0].sigma:.3g}")
    assert frames[-1].caption == ("step 3/3", "sigma 0")
    # Euler's last step lands on its x_0 estimate: the last x_t is the final image.
    np.testing.assert_array_equal(frames[-1].x_t, np.asarray(image))
    again = model.pipeline()(["a red circle"], seeds=[0], options=options)[0]
    np.testing.assert_array_equal(np.asarray(again), np.asarray(image))


def test_explain_command_writes_filmstrip_and_gif(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(
        app, ["explain", "a red circle", "--model", str(tiny_model_dir), "--steps", "4",
              "-o", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    strip_path, gif_path = result.output.split()
    strip = Image.open(strip_path)
    # Under a title, 4 steps on one row (a caption wider than a tile widens its column), x_t
    # over x_0, enlarged 2x with nearest-neighbour resampling, over a caption of two lines.
    top = title_height() + PAD
    assert np.asarray(strip.convert("L"))[: top - PAD].min() < 100  # the title's text
    assert strip.width % 4 == 0 and 32 * 2 <= strip.width // 4 < 32 * 2 + 48
    assert 20 < caption_height(strip, top + 2 * 32 * 2) < 60
    tile = np.asarray(strip)[top : top + 2 * 32 * 2, PAD : PAD + 32 * 2]
    assert (tile != 255).any(axis=(0, 2)).sum() == 32 * 2  # the tiles fill their place
    assert (tile[0::2] == tile[1::2]).all()  # each pixel doubled, not blurred
    gif = Image.open(gif_path)
    assert gif.n_frames >= 4
    bad = CliRunner().invoke(app, ["explain", " ", "--model", str(tiny_model_dir)])
    assert bad.exit_code == 2 and "empty" in bad.output


@pytest.mark.parametrize(
    "kind, options, frames, known",
    [
        # MaskGIT keeps a frame per step; the cosine schedule decides few tokens first.
        ("maskgit", MaskedOptions(steps=5), 16, [1, 4, 7, 12, 16]),
        # DALL-E one token per step: every n/16-th step of a 4x4 grid is every step...
        ("dalle", AutoregressiveOptions(), 16, list(range(1, 17))),
        # ... and fewer frames asked take every (n / frames)-th.
        ("dalle", AutoregressiveOptions(), 4, [4, 8, 12, 16]),
    ],
)
def test_token_filling_shows_the_grid_deciding_its_tokens(kind, options, frames, known):
    model = tiny_token_model(kind)
    image, out = token_filling(model.pipeline(), "a red circle", seed=0, options=options,
                               frames=frames)  # fmt: skip
    assert [16 - int(f.unknown.sum()) for f in out] == known
    first, last = out[0], out[-1]
    grey = np.isin(first.image, CHECKER).all(axis=-1)  # (16, 16): pixels of the checker
    assert grey.mean() == 1 - known[0] / 16  # every unknown cell, and only those
    assert np.array_equal(grey[::4, ::4], first.unknown)  # one 4x4 cell per token
    assert not last.unknown.any() and np.isin(last.image, CHECKER).all(axis=-1).mean() < 0.1
    np.testing.assert_array_equal(last.image, np.asarray(image))  # the last frame is the image
    assert last.caption == (f"step {last.step + 1}/{last.total}", "16/16 known")
    strip = filmstrip(out, scale=2)
    assert strip.width % min(len(out), FILMSTRIP_COLS) == 0  # rows of at most 10 frames
    assert caption_height(strip, PAD + 16 * 2) > 20


@pytest.mark.parametrize(
    "kind, args, frames",
    [("maskgit", ["-O", "steps=4"], 4), ("dalle", ["-O", "temperature=0.5"], 16)],
)
def test_explain_command_shows_a_token_model_filling_its_grid(installed, tmp_path, kind, args,
                                                              frames):  # fmt: skip
    result = CliRunner().invoke(app, ["explain", "a red circle", "--model", f"tiny-{kind}",
                                      *args, "-o", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    strip_path, gif_path = result.output.split()
    strip = Image.open(strip_path)
    cols = min(frames, FILMSTRIP_COLS)
    assert strip.width % cols == 0 and strip.width // cols >= 16 * 2
    assert caption_height(strip, title_height() + PAD + 16 * 2) > 20
    gif = Image.open(gif_path)
    # A frame per step kept (the last, held longer, merges into one), each the 16 px grid
    # enlarged 4x; the first mostly grey checker, the last none.
    assert gif.n_frames == frames and gif.size == (64, 64)
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"))
    gif.seek(frames - 1)
    last = np.asarray(gif.convert("RGB"))
    assert np.isin(first, CHECKER).all(axis=-1).mean() > 0.5
    assert np.isin(last, CHECKER).all(axis=-1).mean() < 0.1
    refused = CliRunner().invoke(app, ["explain", "x", "--model", "tiny-dalle", "--steps", "3",
                                       "-o", str(tmp_path)])  # fmt: skip
    assert refused.exit_code == 2 and "tiny-dalle takes no steps option" in refused.output


def test_inspect_counts_every_parameter(tiny_model_dir):
    model = load_model(tiny_model_dir)
    text = tree({"unet": model.unet, "vae": model.vae}, depth=1)
    total = count(model.unet) + count(model.vae)
    assert f"({total:,})" in text.splitlines()[0]
    assert "down_blocks" in text and "decoder" in text and "100.0%" not in text
    result = CliRunner().invoke(app, ["inspect", str(tiny_model_dir)])
    assert result.exit_code == 0 and "text_encoder" in result.output
    missing = CliRunner().invoke(app, ["inspect", "no-such-model"])
    assert missing.exit_code == 2 and "no model at" in missing.output


def test_position_probe_counts_cells_and_seed_determination():
    from PIL import Image

    from atelier.eval.probes import PHRASES, position_probe
    from atelier.shapes.parse import parse_prompt
    from atelier.shapes.render import render
    from atelier.shapes.scene import realize

    class Obedient:
        """Draws exactly what the prompt says (a perfect model)."""

        def __call__(self, prompts, *, seeds, options):
            rng = np.random.default_rng(0)
            return [Image.fromarray(render(realize(parse_prompt(p), rng), 64)) for p in prompts]

    class Stubborn:
        """Ignores the position words: always the top-left render."""

        def __call__(self, prompts, *, seeds, options):
            rng = np.random.default_rng(0)
            top_left = [p.rsplit(" in ", 1)[0].rsplit(" on ", 1)[0] + " in the top left"
                        for p in prompts]  # fmt: skip
            return [Image.fromarray(render(realize(parse_prompt(p), rng), 64)) for p in top_left]

    good = position_probe(Obedient(), objects=("red circle",), seeds=(0, 1))
    assert good.in_asked_cell == 1.0 and good.seed_determined == 0.0 and good.images == 18
    bad = position_probe(Stubborn(), objects=("red circle",), seeds=(0, 1))
    assert bad.in_asked_cell == pytest.approx(1 / len(PHRASES)) and bad.seed_determined == 1.0


def test_word_sensitivity_measures_how_far_one_word_moves_the_mean_x0():
    from atelier.diffusion.config import DiffusionConfig
    from atelier.eval.probes import word_sensitivity
    from atelier.pipelines.text2image import Text2Image
    from atelier.text.encoder import TextEmbedding

    class Words(torch.nn.Module):
        """States (B, 1, 3): [bottom right?, blue?, square?]."""

        def encode(self, prompts):
            flags = [[float("bottom right" in p), float("blue" in p), float("square" in p)]
                     for p in prompts]  # fmt: skip
            states = torch.tensor(flags)[:, None]
            return TextEmbedding(
                states, torch.ones(len(prompts), 1, dtype=torch.bool), states[:, 0]
            )

    class Painter(torch.nn.Module):
        """Predicts x_0 directly: a unit square of the prompt's colour channel at its corner."""

        def __init__(self, reads_position: bool):
            super().__init__()
            self.reads_position = reads_position
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t, context):
            out = torch.zeros_like(x)
            for i, (right, blue, square) in enumerate(context.states[:, 0].tolist()):
                r = 2 if right and self.reads_position else 0
                out[i, int(blue), r : r + 2, r : r + 2] = 2.0 if square else 1.0
            return out

    def pipe(reads_position):
        return Text2Image(network=Painter(reads_position), text_encoder=Words(),
                          diffusion=DiffusionConfig(prediction_type="sample"),
                          latent_shape=(2, 4, 4))  # fmt: skip

    good = word_sensitivity(pipe(True), seeds=range(3))
    # Moving the 2x2 square of ones: 8 cells differ by 1; recolouring: 8 cells; 1 -> 2: 4 cells.
    assert good.position == pytest.approx(8**0.5) and good.colour == pytest.approx(8**0.5)
    assert good.shape == pytest.approx(2.0) and good.position_vs_colour == pytest.approx(1.0)
    blind = word_sensitivity(pipe(False), seeds=range(3))
    assert blind.position == 0.0 and blind.position_vs_colour == 0.0
    with pytest.raises(ValueError, match="training step"):
        word_sensitivity(pipe(True), t=5000)
