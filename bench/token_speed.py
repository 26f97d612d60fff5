"""Seconds per 64 px image of the token models at their defaults, DALL-E with and without its KV
cache, beside the latent default, measured side by side in one run (one thread).

    .venv/bin/python bench/token_speed.py [--images 4] [--models shapes-ldm-minilm,...]

A model not installed is stood in for by one of its recipe's sizes with random weights (and a
random tokenizer of shapes-vqgan's sizes): the cost of sampling depends on the sizes alone. The
latent default is skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.data.shapes import ShapesDataset  # noqa: E402
from atelier.kinds import dalle, maskgit  # noqa: E402
from atelier.kinds.registry import load_text_to_image  # noqa: E402
from atelier.kinds.token_model import TokenModel  # noqa: E402
from atelier.kinds.tokenizer import TrainedTokenizer  # noqa: E402
from atelier.models.tokenizer import ImageTokenizer  # noqa: E402
from atelier.pipelines.token2image import AutoregressivePipeline  # noqa: E402
from atelier.text.tokenizer import train_bpe  # noqa: E402
from atelier.training.recipes import get_recipe  # noqa: E402

PROMPT = "a red circle above a blue square"


def stand_in(recipe_name: str) -> TokenModel:
    """A token model of the recipe's sizes with random weights."""
    recipe = get_recipe(recipe_name)
    family = {"dalle": dalle.FAMILY, "maskgit": maskgit.FAMILY}[recipe.kind]
    tokenizer_recipe = get_recipe(recipe.tokenizer_model)
    image_tokenizer = TrainedTokenizer("random", ImageTokenizer(tokenizer_recipe.tokenizer).eval(),
                                       tokenizer_recipe.data.resolution)  # fmt: skip
    scenes = ShapesDataset(500, resolution=64)
    text_tokenizer = train_bpe([scenes[i][1] for i in range(len(scenes))], vocab_size=512)
    config = replace(recipe.token_transformer, text_vocab=text_tokenizer.vocab_size,
                     codebook_size=image_tokenizer.tokenizer.codebook_size,
                     grid=image_tokenizer.grid)  # fmt: skip
    return TokenModel(family, f"{recipe_name} (random weights)", family.network(config).eval(),
                      image_tokenizer, text_tokenizer, recipe.token_sampling)  # fmt: skip


def seconds_per_image(draw, images: int) -> float:
    draw(1)  # warm-up
    start = time.perf_counter()
    draw(images)
    return (time.perf_counter() - start) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--models", default="shapes-ldm-minilm,shapes-dalle,shapes-maskgit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        try:
            model = load_text_to_image(name)
        except (FileNotFoundError, ValueError):
            if name not in ("shapes-dalle", "shapes-maskgit"):
                print(f"{name}: not installed, skipped")
                continue
            model = stand_in(name)

        def draw(n: int, model=model) -> None:
            model([PROMPT] * n, seeds=range(n))

        rows.append((model.name, "defaults", seconds_per_image(draw, args.images)))
        if isinstance(model, TokenModel) and model.family is dalle.FAMILY:
            pipe = AutoregressivePipeline(
                network=model.network, text_tokenizer=model.text_tokenizer,
                image_tokenizer=model.tokenizer.tokenizer, rows=model.family.rows, use_cache=False,
            )  # fmt: skip

            def uncached(n: int, pipe=pipe, model=model) -> None:
                pipe([PROMPT] * n, seeds=range(n), options=model.defaults)

            rows.append((model.name, "no KV cache", seconds_per_image(uncached, args.images)))
    base = rows[0][2] if rows else 1.0
    print(
        f"\n{'model':<40} {'how':<12} {'s/image':>8} {'x first row':>11}   "
        f"(one thread, {args.images} images)"
    )
    for name, how, seconds in rows:
        print(f"{name:<40} {how:<12} {seconds:>8.3f} {seconds / base:>10.2f}x")


if __name__ == "__main__":
    main()
