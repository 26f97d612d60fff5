"""``atelier vqgan-clip PROMPT``: optimise an image tokenizer's latent grid against CLIP."""

from __future__ import annotations

from pathlib import Path

import typer

from atelier.budget import check_prompt, check_seed, check_steps
from atelier.cli.common import chosen_seed
from atelier.cli.errors import fail, open_image, writable_folder

MAX_ITERATIONS = 2000


def vqgan_clip(
    prompt: str = typer.Argument(..., help="What to draw: 'a | b:0.5 | c:-1' weights sub-prompts."),
    init: Path = typer.Option(None, "--init", help="Start from this image (default: noise)."),
    iterations: int = typer.Option(150, "--iterations", help="Adam steps on the latent grid."),
    lr: float = typer.Option(0.1, "--lr", help="Adam's step size."),
    cutouts: int = typer.Option(16, "--cutouts", help="Cutouts CLIP sees per step."),
    init_weight: float = typer.Option(0.0, "--init-weight", help="Pull toward the start grid."),
    seed: int = typer.Option(0, "--seed", help="Seed (start codes, cutouts); -1 draws one."),
    tokenizer: str = typer.Option("shapes-vqgan", "--tokenizer", help="Image tokenizer."),
    clip_model: str = typer.Option("shapes-clip", "--clip-model", help="CLIP model."),
    output: Path = typer.Option(Path("out/vqgan-clip"), "-o", "--output", help="Output folder."),
) -> None:
    """VQGAN-CLIP: prints the image's path and its filmstrip's (the optimisation, left to right)."""
    import numpy as np
    from tqdm import tqdm

    from atelier.data.base import array_to_tensor
    from atelier.diffusion.cutouts import CutoutOptions
    from atelier.eval.grid import Tile, labelled_grid
    from atelier.kinds import tokenizer as tokenizer_kind
    from atelier.kinds.clip import load_clip
    from atelier.kinds.registry import load_model
    from atelier.pipelines.metadata import GenerationParams, save_numbered_png
    from atelier.pipelines.vqgan_clip import VQGANCLIP, VQGANCLIPOptions, parse_weighted_prompts

    try:
        check_prompt(prompt)
        parse_weighted_prompts(prompt)
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"--iterations must be in [1, {MAX_ITERATIONS}], got {iterations}")
        check_steps(iterations)
        seed = chosen_seed(seed)
        check_seed(seed)
        options = VQGANCLIPOptions(iterations=iterations, lr=lr, init_weight=init_weight,
                                   cutouts=CutoutOptions(count=cutouts))  # fmt: skip
    except ValueError as err:
        raise fail(str(err)) from None
    source = open_image(init, "init image") if init is not None else None
    writable_folder(output)
    try:
        tok = load_model(tokenizer, want=tokenizer_kind.KIND)
        clip = load_clip(clip_model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    start = None
    if source is not None:
        side = tok.resolution
        if source.size != (side, side):
            source = source.resize((side, side))
        start = array_to_tensor(np.asarray(source))
    pipe = VQGANCLIP(tok.tokenizer, clip, tok.resolution)
    bar = tqdm(total=iterations, unit="step", desc="vqgan-clip")

    def progress(i: int, total: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        result = pipe(prompt, seed=seed, init=start, options=options, callback=progress)
    except ValueError as err:
        raise fail(str(err)) from None
    bar.close()
    extra = {"tokenizer": tok.name, "clip_model": clip_model, "final_loss": result.losses[-1],
             **({"init": init.name} if init is not None else {})}  # fmt: skip
    params = GenerationParams.of(result.image, prompt=prompt, seed=seed, options=options,
                                 model=tok.name, model_hash="-", mode="vqgan-clip",
                                 extra=extra)  # fmt: skip
    path = save_numbered_png(result.image, output, str(seed), params)
    n = len(result.losses)
    strip = labelled_grid([Tile(frame, (f"step {s + 1}/{n}", f"loss {result.losses[s]:.3f}"))
                           for frame, s in zip(result.frames, result.frame_steps)],
                          cols=min(len(result.frames), 10), title=prompt)  # fmt: skip
    strip_path = path.with_name(path.stem + "-filmstrip.png")
    strip.save(strip_path)
    typer.echo(str(path))
    typer.echo(str(strip_path))
