"""A text-to-image model's example grid: ``examples.png`` in its folder, the picture the web
page's model picker shows beside the card's figures, so a user sees what a model draws before
asking it for anything.

The prompts follow the data its card says it was trained on: for the shapes world, the first
seen prompt of each shapes-bench category, each tile framed and captioned with the shapes
judge's verdict (the same prompts for every model, so two grids compare); for real MNIST digits,
"a handwritten D" for every digit; for emoji, the captions of five names the training set holds
and five it holds out, each tile labelled which. One image per prompt at the model's own
defaults, seeds from 0.

    python -m atelier.eval.examples MODEL_FOLDER [MORE...]     # or: atelier export --examples
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atelier.atomic import write_atomic
from atelier.eval.grid import Tile, labelled_grid

EXAMPLES_FILE = "examples.png"
# Emoji captions as `atelier data emoji` writes them (name, short names, subcategory words), with
# the base code points that decide the split (data/emoji.py: is_held_out): the first five are in
# every emoji run's training set, the last five in none.
EMOJI_EXAMPLES = (("red apple, apple, fruit, food", "1F34E"),
                  ("grinning face, grinning, smiling, face", "1F600"),
                  ("rocket, air, transport", "1F680"), ("christmas tree, event", "1F384"),
                  ("slice of pizza, pizza, prepared, food", "1F355"),
                  ("banana, fruit, food", "1F34C"), ("blue heart, heart", "1F499"),
                  ("turtle, reptile, animal", "1F422"), ("dog face, dog, mammal, animal", "1F436"),
                  ("mushroom, other, plant", "1F344"))  # fmt: skip


def emoji_examples() -> list[tuple[str, str]]:
    """The example emoji captions, each with "seen" or "held-out" by the builder's own rule."""
    from atelier.data.emoji import is_held_out

    return [(name, "held-out" if is_held_out(code) else "seen") for name, code in EMOJI_EXAMPLES]


def split_note(split: str) -> str:
    """The line under an example emoji's tile: whether training saw its name."""
    return "name held out of training" if split == "held-out" else "name seen in training"


def example_grid(loaded: Any, source: str | None, *, seed: int = 0) -> Image.Image:
    """The example grid of ``loaded`` (a text-to-image model) for its card's data ``source``
    (``kinds/card.py``: "mnist", "emoji", else the shapes world)."""
    if source == "mnist":
        from atelier.data.mnist import TEMPLATES, WORDS

        prompts = [TEMPLATES[0].format(digit=d, word=WORDS[d]) for d in range(10)]
        specs: list[Any] = [None] * len(prompts)
        notes: list[str | None] = [None] * len(prompts)
    elif source == "emoji":
        names = emoji_examples()
        prompts, specs = [name for name, _ in names], [None] * len(names)
        notes = [split_note(split) for _, split in names]
    else:
        from atelier.shapes.bench import first_per_category, load_suite

        picks = first_per_category(load_suite(), "seen")
        prompts, specs = [bp.prompt for bp in picks], [bp.spec for bp in picks]
        notes = [None] * len(prompts)
    seeds = [seed + k for k in range(len(prompts))]
    images = loaded(prompts, seeds=seeds, options=loaded.defaults)
    tiles = []
    for prompt, spec, note, image in zip(prompts, specs, notes, images):
        if spec is None:
            tiles.append(Tile(image, (prompt, note) if note else (prompt,)))
            continue
        from atelier.shapes.judge import judge

        passed = judge(np.asarray(image.convert("RGB")), spec).passed
        tiles.append(Tile(image, (prompt, "PASS" if passed else "FAIL"), passed))
    title = f"{loaded.name}: one image per prompt at its defaults, seeds from {seed}"
    return labelled_grid(tiles, cols=min(len(tiles), 5), title=title)


def write_examples(folder: Path, *, seed: int = 0) -> Path:
    """Draw the example grid of the model in ``folder`` and write it there (atomically)."""
    from atelier.kinds.card import card_source
    from atelier.kinds.registry import load_text_to_image

    loaded = load_text_to_image(str(folder))
    grid = example_grid(loaded, card_source(Path(folder)), seed=seed)
    data = io.BytesIO()
    grid.save(data, format="PNG", optimize=True)
    return write_atomic(Path(folder) / EXAMPLES_FILE, data.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for folder in args.folders:
        print(write_examples(folder, seed=args.seed))


if __name__ == "__main__":
    main()
