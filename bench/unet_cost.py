"""Training-step cost of UNet variants of the default recipe, measured side by side in one run.

    .venv/bin/python bench/unet_cost.py [--steps 5] [--batch 64] [--threads 1] [--bf16]
    .venv/bin/python bench/unet_cost.py --recipe shapes-unclip --bf16

With ``--recipe shapes-unclip`` the variants are unCLIP's decoder (32 px pixels, 128-wide
caption states and a CLIP image embedding) as stop 27 trained it (attention at 16 and 8 px) and
as the recipe has it (8 px only). ``--bf16`` adds a column of the same steps under bf16
autocast, the two alternating step by step.

Each variant is the ``shapes-ldm-minilm`` UNet on 16x16x4 latents with MiniLM-shaped text states
(12 tokens of 384); a step is forward, v-style MSE, backward and an AdamW update. Prints the CPU
seconds per step (process time, after one warm-up step) and the ratio to the default:

- default: attention (self + cross) at the 8x8 and 4x4 levels only;
- self + cross at 16x16 too;
- text-only attention at 16x16 (``cross_attention_only``, diffusers' ``only_cross_attention``);
- two transformer layers where there is attention (``transformer_depth=2``).

Beside them, what a batch of 64 training captions costs the frozen MiniLM encoder (penultimate
layer, the recipe's) when they are not cached: the price of the first pass over the captions.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.models.unet import ImageCondition, UNet, UNetConfig  # noqa: E402
from atelier.text.encoder import TextEmbedding  # noqa: E402
from atelier.training.recipes import get_recipe  # noqa: E402


def step_cost(config: UNetConfig, *, batch: int, steps: int, side: int = 16,
              bf16: bool = False) -> tuple[float, float | None, int]:  # fmt: skip
    """CPU seconds per training step in fp32 (and under bf16 autocast, alternating with it,
    with ``bf16``) and the parameter count."""
    torch.manual_seed(0)
    net = UNet(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(batch, config.in_channels, side, side)
    t = torch.randint(0, 1000, (batch,)).float()
    context = TextEmbedding(
        torch.randn(batch, 12, config.context_dim),
        torch.ones(batch, 12, dtype=torch.bool),
        torch.randn(batch, config.context_dim),
    )
    image = None
    if config.image_embed_dim is not None:
        embeds = torch.nn.functional.normalize(torch.randn(batch, config.image_embed_dim), dim=-1)
        image = ImageCondition(embeds, torch.zeros(batch, dtype=torch.bool))
    target = torch.randn(batch, config.out_channels, side, side)

    def step(low: bool) -> float:
        began = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            out = net(x, t, context, image=image)
        loss = (out.float() - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.process_time() - began

    modes = (False, True) if bf16 else (False,)
    for low in modes:
        step(low)  # warm-up
    spent = {low: 0.0 for low in modes}
    for _ in range(steps):
        for low in modes:
            spent[low] += step(low)
    params = sum(p.numel() for p in net.parameters())
    return spent[False] / steps, (spent[True] / steps if bf16 else None), params


def caption_cost(*, batch: int, steps: int) -> float:
    """CPU seconds for MiniLM to encode ``batch`` fresh training captions (no cache)."""
    from atelier.data.shapes import ShapesDataset
    from atelier.text.factory import build_text_encoder

    recipe = get_recipe("shapes-ldm-minilm")
    encoder = build_text_encoder(replace(recipe.text_encoder, cache_size=0))
    data = ShapesDataset(batch * (steps + 1), resolution=32, seed=5, split="train")
    captions = [data.example(i)[1] for i in range(len(data))]
    encoder.encode(captions[:batch])  # warm-up
    began = time.process_time()
    for k in range(1, steps + 1):
        encoder.encode(captions[k * batch : (k + 1) * batch])
    return (time.process_time() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipe", default="shapes-ldm-minilm",
                        help="shapes-ldm-minilm (latent) or shapes-unclip (its decoder)")
    parser.add_argument("--bf16", action="store_true", help="also under bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = get_recipe(args.recipe)
    base = recipe.unet
    if recipe.kind == "unclip":
        side, what = recipe.data.resolution, f"{recipe.data.resolution} px pixels"
        variants = {
            "stop 27's decoder (attention at 16 and 8 px)": replace(
                base, attention_levels=(False, True, True)
            ),
            "the recipe's (attention at 8 px only)": base,
        }
    else:
        side, what = 16, "16x16x4 latents"
        variants = {
            "default (attention at 8x8, 4x4)": base,
            "+ self and cross attention at 16x16": replace(
                base, attention_levels=(True, True, True)
            ),
            "+ text-only attention at 16x16": replace(
                base, attention_levels=(True, True, True), cross_attention_only=(True, False, False)
            ),
            "+ a second transformer layer (depth 2)": replace(base, transformer_depth=2),
        }
    print(f"# {args.recipe} UNet training step, batch {args.batch}, {what}, {args.threads} "
          f"thread(s), mean of {args.steps} steps\n")  # fmt: skip
    extra = " bf16 CPU-s / step | bf16 speed-up |" if args.bf16 else ""
    print(f"| variant | parameters | CPU-s / step | ratio |{extra}")
    print("|---|---|---|---|" + ("---|---|" if args.bf16 else ""))
    reference = None
    for name, config in variants.items():
        seconds, low, params = step_cost(config, batch=args.batch, steps=args.steps, side=side,
                                         bf16=args.bf16)  # fmt: skip
        reference = reference or seconds
        row = f"| {name} | {params / 1e6:.2f} M | {seconds:.3f} | {seconds / reference:.2f} |"
        if low is not None:
            row += f" {low:.3f} | {seconds / low:.2f}x |"
        print(row)
    if recipe.kind == "unclip":
        return
    seconds = caption_cost(batch=args.batch, steps=args.steps)
    print(f"| MiniLM encoding {args.batch} uncached captions | frozen | {seconds:.3f} | "
          f"{seconds / reference:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
