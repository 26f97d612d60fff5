"""How much of a token model's fit to its training pictures carries over to held-out ones.

    .venv/bin/python bench/token_fit.py --model emoji-dalle [--data DIR] [--limit N]
        [--checkpoint FILE ...] [--json FILE]

For a DALL-E model (kind ``dalle``), the teacher-forced cross-entropy of its image tokens, in
bits per token, on training pictures and on held-out ones of a real set (``--data``: the folder
``atelier data emoji -o DIR`` wrote; default the cached emoji set), each with its own caption and
with the empty caption. The pictures are put through the model's own image tokenizer, as in
training, and read with the model in eval mode (EMA weights, no caption dropout). The gap
between the two halves is how much the run memorised rather than learnt; the gap between the
caption and the empty caption is what the words are worth on each half. ``--checkpoint`` (a
training checkpoint of the run that made the model, repeatable) measures the transformer's
weights at that step too (its EMA weights where it has them). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.data.folder import ImageFolderDataset  # noqa: E402
from atelier.data.real import half, real_folder  # noqa: E402
from atelier.eval.real_sets import random_subset  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.training.checkpoint import load_checkpoint, tensors_with_prefix  # noqa: E402


@torch.no_grad()
def bits_per_token(model, images: torch.Tensor, captions: list[str], *,
                   batch: int = 32) -> float:  # fmt: skip
    """Mean teacher-forced cross-entropy (bits) of the image tokens of ``images`` (N, 3, H, W)
    in [-1, 1] under ``model`` given ``captions``."""
    network, total, count = model.network.eval(), 0.0, 0
    for start in range(0, len(images), batch):
        codes = model.tokenizer.tokenizer.encode(images[start : start + batch]).flatten(1)
        prompts = captions[start : start + batch]
        if model.text_encoder is not None:
            text = model.text_encoder.encode(prompts)
        else:
            window = network.config.text_length
            text = model.text_tokenizer.encode(prompts, max_length=window).ids
        logits = network(text, codes[:, :-1]).float()
        total += F.cross_entropy(logits.flatten(0, 1), codes.flatten(), reduction="sum").item()
        count += codes.numel()
    return total / count / math.log(2)


def pictures(folder: Path, part: str, side: int, limit: int) -> tuple[torch.Tensor, list[str]]:
    """``limit`` pictures of ``folder``'s ``part`` (all when fewer; else drawn by seed 0) and
    their captions."""
    data = ImageFolderDataset(half(folder, part), resolution=side)
    order = torch.arange(len(data))
    if len(data) > limit:
        order = random_subset(order, limit, seed=0)
    items = [data[i] for i in order.tolist()]
    return torch.stack([x for x, _ in items]), [c for _, c in items]


def load_transformer(model, path: Path) -> int:
    """Put the transformer weights of the training checkpoint ``path`` (EMA where it has them)
    into ``model``; returns the checkpoint's step."""
    checkpoint = load_checkpoint(path)
    weights = tensors_with_prefix(checkpoint, "model.transformer.")
    weights |= tensors_with_prefix(checkpoint, "ema.transformer.")
    model.network.load_state_dict(weights)
    return checkpoint.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a DALL-E model, by name or folder")
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder atelier data wrote (default: the cached emoji set)")
    parser.add_argument("--limit", type=int, default=353,
                        help="pictures per half (the training ones drawn at random, seed 0)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a training checkpoint of the model's run (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    model = load_model(args.model)
    if getattr(model, "family", None) is None or model.family.kind != "dalle":
        raise SystemExit(f"{args.model} is not a DALL-E model (kind dalle)")
    folder = args.data or real_folder("emoji")
    halves = {part: pictures(folder, part, model.resolution, args.limit)
              for part in ("train", "heldout")}  # fmt: skip
    rows = []
    for weights in [None, *args.checkpoint]:
        label = "the model" if weights is None else f"step {load_transformer(model, weights)}"
        for part, (images, captions) in halves.items():
            began = time.process_time()
            with_caption = bits_per_token(model, images, captions)
            without = bits_per_token(model, images, [""] * len(captions))
            rows.append({"weights": label, "half": part, "pictures": len(images),
                         "caption": with_caption, "empty_caption": without,
                         "cpu_s": time.process_time() - began})  # fmt: skip
    size = model.tokenizer.tokenizer.codebook_size
    print(f"{args.model} on {folder}: teacher-forced bits per image token "
          f"(codebook of {size}: {math.log2(size):.1f} bits uniform)\n")
    print("| weights | pictures | n | with their captions | with the empty caption | words worth |")
    print("|---|---|--:|--:|--:|--:|")
    for r in rows:
        print(f"| {r['weights']} | {r['half']} | {r['pictures']} | {r['caption']:.3f} "
              f"| {r['empty_caption']:.3f} | {r['empty_caption'] - r['caption']:.3f} |")
    print()
    for train, held in zip(rows[::2], rows[1::2]):
        print(f"{train['weights']}: held-out / training, with captions "
              f"{held['caption'] / train['caption']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
