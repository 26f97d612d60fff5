"""atelier explain (filmstrip + GIF of the reverse process) and atelier inspect (the tree)."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.eval.explain import reverse_process
from atelier.eval.inspect import count, tree
from atelier.kinds.registry import load_model


def test_reverse_process_has_a_frame_per_step_ending_at_the_image(tiny_model_dir):
    model = load_model(tiny_model_dir)
    options = SamplingOptions(steps=3, guidance=2.0, sampler="euler")
    image, frames = reverse_process(model.pipeline(), "a red circle", seed=0, options=options)
    assert [f.step for f in frames] == [0, 1, 2]
    assert all(f.x_t.shape == (32, 32, 3) and f.x_0.shape == (32, 32, 3) for f in frames)
    assert frames[0].sigma > frames[-1].sigma
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
    assert strip.size == (4 * 32 * 2, 2 * 32 * 2)  # 4 steps wide, x_t over x_0, enlarged 2x
    gif = Image.open(gif_path)
    assert gif.n_frames >= 4
    bad = CliRunner().invoke(app, ["explain", " ", "--model", str(tiny_model_dir)])
    assert bad.exit_code == 2 and "empty" in bad.output


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
