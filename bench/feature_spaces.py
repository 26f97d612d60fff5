"""What FID says in each real set's feature spaces: known pictures against the held-out ones.

    .venv/bin/python bench/feature_spaces.py --set emoji [--json FILE]
    .venv/bin/python bench/feature_spaces.py --set mnist [--json FILE]

For every feature space of the set (emoji: emoji-features' pooled last stage, which FID uses, and
the linear layer before its heads, which it does not; emoji-clip's image tower; digits: the digit
judge's layer), FID against all held-out pictures of: as many random training pictures (the
floor), a second such sample against the first (no held-out names involved), and the first
sample distorted (blurred, noised, shifted, thickened, grey). A space worth its FID puts the
floor below every distortion; one that memorised the training names puts the floor far above
training-against-training and barely moves for a distortion. Prints a Markdown table, each FID
also as a ratio to the floor. The sets are built into the data cache if they are not there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.eval.fid import FeatureStats, Resized, extract, frechet_distance  # noqa: E402
from atelier.eval.real_sets import distortions, folder_tensors, random_subset  # noqa: E402

Extractor = Callable[[torch.Tensor], torch.Tensor]


def spaces(name: str) -> tuple[dict[str, Extractor], Path, int]:
    """The set's feature spaces, its built folder and picture side."""
    from atelier.data.real import real_folder
    from atelier.kinds.registry import load_model

    folder = real_folder(name)
    if name == "mnist":
        from atelier.eval.digits import digit_features

        return {"mnist-classifier (the digits suite's)": digit_features(
            load_model("mnist-classifier").float())}, folder, 32  # fmt: skip
    from atelier.eval.clip_metrics import CLIPImageFeatures
    from atelier.kinds.clip import load_clip

    net = load_model("emoji-features").float()
    size = net.config.image_size
    return {
        "emoji-features, pooled last stage (FID's)": Resized(net, size),
        "emoji-features, linear layer before the heads": Resized(
            lambda x: net.features(net.stages(x)), size),
        "emoji-clip image tower": CLIPImageFeatures(load_clip("emoji-clip")),
    }, folder, 64  # fmt: skip


@torch.no_grad()
def measure(name: str, seed: int = 0) -> dict:
    extractors, folder, side = spaces(name)
    held = folder_tensors(folder / "heldout", side)
    train = folder_tensors(folder / "train", side)
    first, second = random_subset(train, len(held), seed), random_subset(train, len(held), seed + 1)
    rows = {}
    for space, fn in extractors.items():
        began = time.process_time()

        def stats(x: torch.Tensor, fn: Extractor = fn) -> FeatureStats:
            return FeatureStats.of(extract(fn, x))

        real, base = stats(held), stats(first)
        fid = {"training pictures (the floor)": frechet_distance(real, base),
               "a second training sample against the first": frechet_distance(base, stats(second))}
        for what, x in distortions(first, seed).items():
            fid[f"the floor's sample {what}"] = frechet_distance(real, stats(x))
        rows[space] = {"fid": fid, "cpu_seconds": time.process_time() - began}
    return {"set": name, "held_out": len(held), "sample": len(first), "seed": seed, "spaces": rows}


def table(result: dict) -> str:
    names = list(next(iter(result["spaces"].values()))["fid"])
    spaces_ = list(result["spaces"])
    lines = [f"{result['set']}: FID against the {result['held_out']} held-out pictures, samples "
             f"of {result['sample']} (ratio to the floor in brackets)", "",
             "| pictures | " + " | ".join(spaces_) + " |",
             "|---|" + "--:|" * len(spaces_)]  # fmt: skip
    for row in names:
        cells = []
        for space in spaces_:
            fid = result["spaces"][space]["fid"]
            floor = fid["training pictures (the floor)"]
            cells.append(f"{fid[row]:.4g} ({fid[row] / floor:.2f}x)")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("emoji", "mnist"), default="emoji")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = measure(args.set, args.seed)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
