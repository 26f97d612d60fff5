"""A diffusion model in atelier and, exported (``atelier export --format diffusers``), in
diffusers' StableDiffusionPipeline loop: the same prompt embeddings, seeds, scheduler and steps;
pixel differences and seconds per image of both, measured side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/diffusers_parity.py [--model shapes-ldm-minilm]
        [--images 4] [--runs 3] [--compile]

The diffusers side is StableDiffusionPipeline's ``__call__`` loop written out: latents from each
image's generator times ``init_noise_sigma``, the unconditional and conditional rows in one UNet
call, CFG, ``scheduler.step`` with the images' generators, the VAE decode. It differs only where
the model does (the folder's README says how): atelier's text encoder with its padding mask, the
UNet's coordinate channels, the per-channel latent space. Times are warm medians of ``--runs``,
at one image and at ``--images`` images a call, alternating between the two implementations.
``--compile`` adds both compiled (atelier's ``Model.compile``, diffusers' UNet through
``torch.compile`` the same way), their first use, and compiled atelier's pixels against eager's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.kinds.default import DEFAULT_MODEL  # noqa: E402
from atelier.kinds.diffusers_folder import save_diffusers  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.models.unet import coordinate_grid  # noqa: E402
from atelier.text.encoder import TextEmbedding  # noqa: E402

PROMPTS = ["a red circle above a blue square", "two green triangles", "a purple square",
           "three yellow circles", "a cyan triangle below a red circle"]  # fmt: skip


def load_diffusers(folder: Path):
    """The exported UNet, VAE (None for a pixel model) and scheduler, by ``from_pretrained``."""
    import diffusers

    unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = None
    if (folder / "vae").is_dir():
        vae = diffusers.AutoencoderKL.from_pretrained(folder / "vae").eval()
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, config["_class_name"]).from_pretrained(folder / "scheduler")
    return unet, vae, scheduler


@torch.no_grad()
def diffusers_images(unet, vae, scheduler, cond: TextEmbedding, uncond: TextEmbedding,
                     seeds: list[int], *, steps: int, guidance: float,
                     latent_shape: tuple[int, int, int]) -> torch.Tensor:  # fmt: skip
    """Images (B, 3, H, W) in [-1, 1] by StableDiffusionPipeline's loop."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    latents = torch.stack([torch.randn(latent_shape, generator=g) for g in generators])
    latents = latents * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps)
    states = torch.cat([uncond.states, cond.states])  # the pipeline's order: unconditional first
    mask = torch.cat([uncond.mask, cond.mask])
    coords = unet.config.in_channels > latent_shape[0]
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        if coords:
            x = torch.cat([x, coordinate_grid(x)], dim=1)
        out = unet(x, t, encoder_hidden_states=states, encoder_attention_mask=mask).sample
        out_u, out_c = out.chunk(2)
        guided = out_u + guidance * (out_c - out_u)
        latents = scheduler.step(guided, t, latents, generator=generators).prev_sample
    if vae is None:
        return latents.clamp(-1, 1)
    c = vae.config
    if c.latents_mean is not None:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(c.latents_mean).view(shape)
        std = torch.tensor(c.latents_std).view(shape)
        latents = latents * std / c.scaling_factor + mean
    else:
        latents = latents / c.scaling_factor
    return vae.decode(latents).sample.clamp(-1, 1)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), rounded as atelier's PNGs are."""
    from atelier.data.base import tensor_to_pil

    return np.stack([np.asarray(tensor_to_pil(img)) for img in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="Also both compiled.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    options = model.defaults
    prompts = (PROMPTS * args.images)[: args.images]
    seeds = list(range(args.images))
    cond = model.text_encoder.encode(prompts)
    uncond = model.text_encoder.encode([""] * len(prompts))
    with tempfile.TemporaryDirectory() as tmp:
        save_diffusers(model, tmp, card=f"# {model.name}\n")
        unet, vae, scheduler = load_diffusers(Path(tmp))

    def ours(pipe):
        def draw(n: int) -> torch.Tensor:
            return pipe.decode(pipe.sample(prompts[:n], seeds=seeds[:n], options=options))

        return draw

    def theirs(network):
        def draw(n: int) -> torch.Tensor:
            return diffusers_images(
                network, vae, scheduler, _rows(cond, n), _rows(uncond, n),
                seeds[:n], steps=options.steps, guidance=options.guidance,
                latent_shape=model.config.latent_shape,
            )  # fmt: skip

        return draw

    draws = {"atelier": ours(model.pipeline()), "diffusers": theirs(unet)}
    a, b = to_pixels(draws["atelier"](args.images)), to_pixels(draws["diffusers"](args.images))
    print(f"{model.name}: {options.summary()}; scheduler {type(scheduler).__name__}")
    delta = _delta(a, b)
    print(f"pixels, {args.images} images (0-255): max |delta| {delta.max()}, mean |delta| "
          f"{delta.mean():.4f}, identical {(delta == 0).mean():.4f} of values")  # fmt: skip
    if args.compile:
        draws["atelier compiled"] = ours(model.compile().pipeline())
        draws["diffusers compiled"] = theirs(torch.compile(unet, dynamic=False))
        for name in ("atelier compiled", "diffusers compiled"):
            start = time.perf_counter()
            for n in (1, args.images):
                pixels = to_pixels(draws[name](n))
            print(f"{name}: first use (compiling at 1 and {args.images} images) "
                  f"{time.perf_counter() - start:.1f} s; pixels against eager atelier's, max "
                  f"|delta| {_delta(pixels, a).max()}, identical "
                  f"{(_delta(pixels, a) == 0).mean():.4f} of values")  # fmt: skip
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.runs):
        for n in (1, args.images):
            for name, draw in draws.items():
                start = time.perf_counter()
                draw(n)
                times.setdefault((name, n), []).append((time.perf_counter() - start) / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nseconds per image, one thread, median of {args.runs}; images/s against eager "
          "diffusers in brackets\n")  # fmt: skip
    print(f"{'images a call':>13} " + " ".join(f"{name:>24}" for name in draws))
    for n in (1, args.images):
        base = med[("diffusers", n)]
        cells = [f"{med[(name, n)]:.3f} ({base / med[(name, n)]:.2f}x)" for name in draws]
        print(f"{n:>13} " + " ".join(f"{c:>24}" for c in cells))
    if args.compile:
        for n in (1, args.images):
            ratio = med[("diffusers compiled", n)] / med[("atelier compiled", n)]
            print(f"compiled atelier against compiled diffusers, {n} images a call: {ratio:.2f}x")


def _delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def _rows(text: TextEmbedding, n: int) -> TextEmbedding:
    return TextEmbedding(text.states[:n], text.mask[:n], text.pooled[:n])


if __name__ == "__main__":
    main()
