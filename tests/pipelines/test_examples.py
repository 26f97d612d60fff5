"""A model's example grid (eval/examples.py): the prompts its data calls for, judged where the
world allows, written into its folder by `atelier export --examples`."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.eval.examples import EXAMPLES_FILE, emoji_examples, example_grid
from atelier.eval.grid import FAIL_COLOUR, PASS_COLOUR
from atelier.shapes.bench import load_suite


class Renderer:
    """A fake model that draws each shapes prompt exactly (every tile passes) or, for other
    prompts, a white square; it records what it was asked."""

    name, defaults = "renderer", None

    def __init__(self):
        self.asked = []

    def __call__(self, prompts, *, seeds, options):
        from atelier.shapes.parse import parse_prompt
        from atelier.shapes.render import render
        from atelier.shapes.scene import realize

        self.asked += prompts
        out = []
        for p, s in zip(prompts, seeds):
            try:
                px = render(realize(parse_prompt(p), np.random.default_rng(s)), 64)
            except ValueError:
                px = np.full((64, 64, 3), 255, np.uint8)
            out.append(Image.fromarray(px))
        return out


def colours(image):
    return {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3)[::7]}


def test_shapes_models_draw_one_seen_prompt_per_category_judged():
    model = Renderer()
    grid = example_grid(model, None)
    suite = load_suite()
    categories = list(dict.fromkeys(bp.category for bp in suite))
    assert len(model.asked) == len(categories)
    by_prompt = {bp.prompt: bp for bp in suite if bp.split == "seen"}
    assert [by_prompt[p].category for p in model.asked] == categories
    assert PASS_COLOUR in colours(grid) and FAIL_COLOUR not in colours(grid)
    assert grid.width >= 5 * 128  # tiles enlarged so 64 px pictures are visible


def test_real_sets_draw_their_own_prompts_unjudged():
    model = Renderer()
    grid = example_grid(model, "mnist")
    assert model.asked[0] == "a handwritten 0" and len(model.asked) == 10
    assert PASS_COLOUR not in colours(grid) and FAIL_COLOUR not in colours(grid)
    emoji = Renderer()
    example_grid(emoji, "emoji")
    assert emoji.asked == [name for name, _ in emoji_examples()]


def test_emoji_examples_are_five_seen_names_then_five_held_out_by_the_builders_rule():
    # The code points are the package's (emoji-datasource-google 16.0.0); the builder's hash
    # of them puts banana, blue heart, turtle, dog face and mushroom in the held-out part.
    names = emoji_examples()
    assert [split for _, split in names] == ["seen"] * 5 + ["held-out"] * 5
    assert names[5] == ("banana, fruit, food", "held-out")
    assert names[0] == ("red apple, apple, fruit, food", "seen")


def test_export_examples_writes_the_grid_into_the_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "shipped"
    result = CliRunner().invoke(app, ["export", str(tiny_model_dir), "-o", str(out), "--half",
                                      "--examples"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / EXAMPLES_FILE).is_file() and str(out / EXAMPLES_FILE) in result.output
    assert Image.open(out / EXAMPLES_FILE).width >= 5 * 128
    bad = CliRunner().invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "d"),
                                   "--format", "diffusers", "--examples"])  # fmt: skip
    assert bad.exit_code == 2 and "--examples" in bad.output
