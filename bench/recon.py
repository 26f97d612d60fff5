"""How well autoencoders reconstruct a folder of real images: PSNR and SSIM per model.

    .venv/bin/python bench/recon.py --model shapes-vae --data DIR/heldout [--model ...]
        [--limit N] [--json FILE]

``--model`` takes an autoencoder (kind ``vae``), an image tokenizer (kind ``tokenizer``) or a
latent diffusion model (its autoencoder), by name or folder; ``--data`` a captioned image folder
such as the held-out half of ``atelier data emoji -o DIR``, read at the model's own side. Each
image goes through encode, the latent's mode (or its codes) and decode; PSNR and SSIM
(``eval/image_quality.py``, checked against torchmetrics) are computed per image in [0, 1] and
averaged. Prints a Markdown table (mean and standard deviation over images, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.data.folder import ImageFolderDataset  # noqa: E402
from atelier.eval.autoencoder import reconstruction_quality  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402


def round_tripper(model: str):
    """The model's autoencoder (anything with ``round_trip``), its side and a description."""
    loaded = load_model(model)
    vae = getattr(loaded, "vae", None)
    if vae is not None and hasattr(vae, "round_trip"):
        side = getattr(loaded, "resolution", None) or 64
        return vae, side, f"KL, {vae.config.latent_channels} x 1/{vae.config.downsampling_factor}"
    tokenizer = getattr(loaded, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "round_trip"):
        c = tokenizer.config
        return tokenizer, loaded.resolution, f"{c.codebook_size} codes x 1/{c.downsampling_factor}"
    raise SystemExit(f"{model} has no autoencoder or image tokenizer to measure")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="repeatable")
    parser.add_argument("--data", type=Path, required=True, help="a captioned image folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for name in args.model:
        net, side, what = round_tripper(name)
        data = ImageFolderDataset(args.data, resolution=side)
        n = len(data) if args.limit is None else min(args.limit, len(data))
        x = torch.stack([data[i][0] for i in range(n)])
        began = time.process_time()
        q = reconstruction_quality(net, x)
        rows.append({"model": name, "bottleneck": what, "side": side, "images": q.images,
                     "psnr": q.psnr, "psnr_std": q.psnr_std, "ssim": q.ssim,
                     "ssim_std": q.ssim_std,
                     "cpu_seconds": time.process_time() - began})  # fmt: skip
    print(f"Reconstruction of {args.data} (per image, then averaged; +- one std over images)\n")
    print("| model | bottleneck | side | images | PSNR dB | SSIM | CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['bottleneck']} | {r['side']} | {r['images']} | "
              f"{r['psnr']:.2f} +- {r['psnr_std']:.2f} | {r['ssim']:.4f} +- "
              f"{r['ssim_std']:.4f} | {r['cpu_seconds']:.1f} |")  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"data": str(args.data), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
