"""``atelier export MODEL -o DIR [--half] [--name N] [--sampler S --steps K --guidance W]
[-O NAME=VALUE ...]``: copy a model folder of any kind, optionally as float16, under a new name
(an A/B arm promoted to the shipped name), and with new default sampling settings (a sweep's
choice; ``-O`` sets any option of the model's kind, e.g. a token model's ``temperature``).
``--lora NAME:WEIGHT`` merges LoRAs into a diffusion model's weights (and ``--embedding`` is
refused: a learned word lives in its own file). ``--format diffusers`` writes a diffusion model
as diffusers' ``unet/``, ``vae/`` and ``scheduler/`` folders instead
(``kinds/diffusers_folder.py``), the scheduler being the model's default sampler after these
changes."""

from __future__ import annotations

from pathlib import Path

import typer

from atelier.cli.common import LORA, OPTION
from atelier.cli.errors import fail

FORMATS = ("atelier", "diffusers")


def export(
    model: str = typer.Argument(..., help="Model name or folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write."),
    half: bool = typer.Option(False, "--half", help="Store the weights as float16."),
    sampler: str = typer.Option(None, "--sampler", help="New default sampler."),
    steps: int = typer.Option(None, "--steps", help="New default step count."),
    guidance: float = typer.Option(None, "--guidance", help="New default CFG scale."),
    guidance_rescale: float = typer.Option(
        None, "--guidance-rescale", help="New default CFG rescale phi."
    ),
    name: str = typer.Option(None, "--name", help="New model name (config and card title)."),
    option: list[str] = OPTION,
    lora: list[str] = LORA,
    fmt: str = typer.Option(
        "atelier",
        "--format",
        help="atelier (a model folder) or diffusers (unet/, vae/ and scheduler/ folders that "
        "diffusers' from_pretrained loads; diffusion models).",
    ),  # fmt: skip
    examples: bool = typer.Option(
        False,
        "--examples",
        help="Also draw the written model's example grid into the folder (examples.png, shown "
        "by the web page's model picker): a text-to-image model, atelier format.",
    ),  # fmt: skip
) -> None:
    """Write a model folder elsewhere (e.g. into atelier/weights to ship it)."""
    import torch

    from atelier.kinds.base import parse_assignments
    from atelier.kinds.card import renamed
    from atelier.kinds.folder import read_config, resolve
    from atelier.kinds.registry import kind_of

    changes = {"sampler": sampler, "steps": steps, "guidance": guidance,
               "guidance_rescale": guidance_rescale}  # fmt: skip
    changes = {k: v for k, v in changes.items() if v is not None}
    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r} is not known; valid: {', '.join(FORMATS)}")
    if examples and fmt != "atelier":
        raise fail("--examples draws into an atelier model folder; drop it with --format diffusers")
    try:
        changes |= parse_assignments(option)
        folder = resolve(model)
        config = read_config(folder)
        kind = kind_of(folder, config)
        loaded = kind.load(folder, config, device="cpu")
        if changes:
            loaded = kind.with_defaults(loaded, **changes)
        old = str(config.get("name") or (config.get("upscaler") or {}).get("name") or folder.name)
        if name:
            loaded = kind.renamed(loaded, name)
        merged = _merge_loras(loaded, lora)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    card_file = folder / "README.md"
    card = card_file.read_text() if card_file.is_file() else f"# {old}\n"
    card = renamed(card, old, name)
    if merged:
        card += f"\nMerged into its weights: LoRA {merged} (`atelier export --lora`).\n"
    dtype = torch.float16 if half else torch.float32
    try:
        if fmt == "diffusers":
            written = _diffusers(loaded, output, card=card, dtype=dtype)
        else:
            written = kind.save(loaded, output, card=card, dtype=dtype)
        typer.echo(str(written))
        if examples:
            if not kind.facts(read_config(written)).text_to_image:
                raise ValueError(
                    f"{old} is not a text-to-image model: --examples draws "
                    "prompts with one (the folder is written, without them)"
                )
            from atelier.eval.examples import write_examples

            typer.echo(str(write_examples(written)))
    except ValueError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"cannot write the model folder {output} ({err.strerror or err})") from None


def _diffusers(loaded, output: Path, *, card: str, dtype) -> Path:
    """``loaded`` as diffusers' folders; a ValueError for another kind, or what diffusers has no
    equivalent for."""
    from atelier.kinds.diffusers_folder import save_diffusers
    from atelier.kinds.diffusion import Model

    if not isinstance(loaded, Model):
        raise ValueError(f"{loaded.name} is not a diffusion model: --format diffusers writes "
                         "the UNet, autoencoder and scheduler of one")  # fmt: skip
    return save_diffusers(loaded, output, card=card, dtype=dtype)


def _merge_loras(loaded, items: list[str]) -> str:
    """Merge the ``--lora NAME[:WEIGHT]`` s into a diffusion model's weights; what was merged."""
    from atelier.kinds.diffusion import Model
    from atelier.pipelines.lora_tags import parse_lora_spec

    if not items:
        return ""
    if not isinstance(loaded, Model):
        raise ValueError(f"{loaded.name} is not a diffusion model: --lora merges into the UNet "
                         "of one")  # fmt: skip
    specs = [parse_lora_spec(item) for item in items]
    loaded.use_loras(specs)
    for name in dict.fromkeys(name for name, _ in specs):
        loaded.lora(name).merge()  # the hooks then add nothing; the weights hold the update
    return ", ".join(f"{n} at {w:g}" for n, w in specs)
