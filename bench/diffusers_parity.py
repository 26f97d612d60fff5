"""A diffusion model in atelier and, exported (``atelier export --format diffusers``), in
diffusers' StableDiffusionPipeline loop: the same prompt embeddings, seeds, scheduler and steps;
pixel differences and seconds per image of both, measured side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/diffusers_parity.py [--model shapes-ldm-minilm]
        [--images 4] [--runs 3]

The diffusers side is StableDiffusionPipeline's ``__call__`` loop written out: latents from each
image's generator times ``init_noise_sigma``, the unconditional and conditional rows in one UNet
call, CFG, ``scheduler.step`` with the images' generators, the VAE decode. It differs only where
the model does (the folder's README says how): atelier's text encoder with its padding mask, the
UNet's coordinate channels, the per-channel latent space. Times are warm medians of ``--runs``,
at one image and at ``--images`` images a call, alternating between the two implementations.
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
    pipe = model.pipeline()

    def ours(n: int) -> torch.Tensor:
        return pipe.decode(pipe.sample(prompts[:n], seeds=seeds[:n], options=options))

    def theirs(n: int) -> torch.Tensor:
        return diffusers_images(
            unet, vae, scheduler, _rows(cond, n), _rows(uncond, n),
            seeds[:n], steps=options.steps, guidance=options.guidance,
            latent_shape=model.config.latent_shape,
        )  # fmt: skip

    a, b = to_pixels(ours(args.images)), to_pixels(theirs(args.images))
    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))
    print(f"{model.name}: {options.summary()}; scheduler {type(scheduler).__name__}")
    print(f"pixels, {args.images} images (0-255): max |delta| {delta.max()}, mean |delta| "
          f"{delta.mean():.4f}, identical {(delta == 0).mean():.4f} of values")  # fmt: skip
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.runs):
        for n in (1, args.images):
            for name, draw in (("atelier", ours), ("diffusers", theirs)):
                start = time.perf_counter()
                draw(n)
                times.setdefault((name, n), []).append((time.perf_counter() - start) / n)
    print(f"\n{'images a call':>13} {'atelier s/image':>16} {'diffusers s/image':>18} "
          f"{'atelier images/s vs diffusers':>30}   (one thread, median of "
          f"{args.runs})")  # fmt: skip
    for n in (1, args.images):
        ours_s = statistics.median(times[("atelier", n)])
        theirs_s = statistics.median(times[("diffusers", n)])
        print(f"{n:>13} {ours_s:>16.3f} {theirs_s:>18.3f} {theirs_s / ours_s:>29.2f}x")


def _rows(text: TextEmbedding, n: int) -> TextEmbedding:
    return TextEmbedding(text.states[:n], text.mask[:n], text.pooled[:n])


if __name__ == "__main__":
    main()
