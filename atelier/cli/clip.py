"""``atelier clip …``: zero-shot classification, CLIP score and a trained CLIP's own metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from atelier.cli.errors import fail, open_image

if TYPE_CHECKING:
    import torch

    from atelier.models.clip import CLIP

app = typer.Typer(
    help="CLIP: zero-shot classification, scores and retrieval.", no_args_is_help=True
)
DEFAULT_CLIP = "shapes-clip"


def _clip(model: str) -> CLIP:
    from atelier.kinds.clip import load_clip

    try:
        return load_clip(model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def _image(path: Path, size: int) -> torch.Tensor:
    from atelier.data.base import array_to_tensor
    from atelier.data.images import square_pixels

    return array_to_tensor(square_pixels(open_image(path), size))[None]  # (1, 3, S, S)


@app.command()
def classify(
    image: Path = typer.Argument(..., help="Image file (any mode; center-cropped square)."),
    labels: str = typer.Option(
        ..., "--labels", help='Comma-separated, e.g. "a red circle,a blue square".'
    ),
    model: str = typer.Option(DEFAULT_CLIP, "--model", help="CLIP model name or folder."),
) -> None:
    """Print each label's zero-shot probability, most probable first."""
    from atelier.eval.clip_metrics import zero_shot_probabilities

    names = [label.strip() for label in labels.split(",") if label.strip()]
    if len(names) < 2:
        raise fail("--labels needs at least two comma-separated labels")
    clip = _clip(model)
    probs = zero_shot_probabilities(clip, _image(image, clip.image_size), names)[0]
    for k in probs.argsort(descending=True).tolist():
        typer.echo(f"{probs[k].item():.3f}  {names[k]}")


@app.command()
def score(
    image: Path = typer.Argument(..., help="Image file."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The caption to score against."),
    model: str = typer.Option(DEFAULT_CLIP, "--model", help="CLIP model name or folder."),
) -> None:
    """CLIP score, 100 * max(cos, 0), of one image and caption."""
    from atelier.eval.clip_metrics import clip_scores

    if not prompt.strip():
        raise fail("--prompt is empty; give the caption to score")
    clip = _clip(model)
    typer.echo(f"{clip_scores(clip, _image(image, clip.image_size), [prompt]).item():.2f}")


@app.command("eval")
def evaluate(
    model: str = typer.Argument(DEFAULT_CLIP, help="CLIP model name or folder."),
    per_class: int = typer.Option(20, "--per-class", help="Fresh renders per class."),
    scenes: int = typer.Option(500, "--scenes", help="Fresh scenes for retrieval and binding."),
) -> None:
    """Zero-shot accuracy on 18 single-object classes; retrieval recall and binding (caption
    against a hard negative, per kind of change) on fresh scenes; how far the text tower puts a
    caption from its colour-swapped twin."""
    import torch

    from atelier.data.shapes import ShapesDataset
    from atelier.eval.clip_metrics import retrieval_recall, zero_shot_accuracy
    from atelier.eval.shapes_probe import (
        binding_accuracy,
        single_object_probe,
        swapped_colour_captions,
        swapped_colour_cosine,
    )

    clip = _clip(model)
    text = clip.text_config
    if text.kind == "transformer":
        typer.echo(f"text tower: {text.layers} layers of {text.width}, pooling {text.pooling}")
    else:
        typer.echo(f"text tower: {text.kind}")
    images, labels, truth = single_object_probe(per_class, size=64)
    typer.echo(
        f"zero-shot accuracy (18 classes): {zero_shot_accuracy(clip, images, labels, truth):.3f}"
    )
    data = ShapesDataset(scenes, resolution=64, seed=10_000, split="any", progress=False)
    x = torch.stack([data[i][0] for i in range(len(data))])
    for name, value in retrieval_recall(clip, x, [data[i][1] for i in range(len(data))]).items():
        typer.echo(f"{name}: {value:.3f}")
    binding = binding_accuracy(clip, scenes=scenes)
    typer.echo(
        "caption above a hard negative (one fact changed): "
        + ", ".join(f"{k} {v:.3f}" for k, v in binding.items())
    )
    typer.echo(
        f"text cosine, colours swapped between two shapes ({len(swapped_colour_captions())} "
        f"caption pairs): {swapped_colour_cosine(clip):.4f}"
    )
