"""Train unCLIP's two networks: the prior (``kind = "unclip-prior"``) over a trained CLIP's image
embeddings, then the decoder (``kind = "unclip"``), exported beside that prior (and so beside the
CLIP) as one unCLIP model.

Both read the training images and captions through the frozen CLIP once: every image's
embedding and every caption's text states and embedding are kept under ``$ATELIER_HOME/data``
(``data/clip_embeddings.py``), in files named by the CLIP's weights and the data. A prior card's
CPU time counts the CLIP's; a decoder card's counts the prior's, and so the CLIP's once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from atelier.data.base import fit_images
from atelier.data.clip_embeddings import CaptionEncodings, ImageEmbeddingDataset
from atelier.data.shapes import ShapesDataset
from atelier.digest import state_digest
from atelier.kinds import clip as clip_kind
from atelier.kinds import unclip_prior
from atelier.kinds.card import METRICS_TODO, cost, model_card
from atelier.kinds.folder import resolve
from atelier.kinds.unclip import UnCLIPModel, save_unclip
from atelier.kinds.unclip_prior import TrainedPrior, save_prior
from atelier.models.clip import CLIP
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorTransformer
from atelier.models.unet import UNet
from atelier.paths import home
from atelier.text.encoder import TextEmbedding
from atelier.training.callbacks import CPULedger, TimestepLossLogger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.recipe_data import (
    base_model,
    captions,
    folder_digest,
    held_out_scenes,
    recaptioned,
    recipe_images,
)
from atelier.training.recipes import Recipe, RecipeError
from atelier.training.unclip_tasks import DecoderTask, PriorTask, SamplePairs

SAMPLE_PAIRS = 16


@dataclass(frozen=True)
class CLIPView:
    """The training set seen through a CLIP: ``data`` (items ``((image, z_i), caption)``,
    recaptioned as the recipe asks), every image's z_i (N, E), every caption's encoding, and
    fresh held-out pairs to sample from."""

    data: Any
    embeddings: torch.Tensor
    captions: CaptionEncodings
    pairs: SamplePairs


def _clip_view(recipe: Recipe, clip: CLIP, data_dir: Path | None) -> CLIPView:
    """The recipe's data through ``clip``, the image embeddings and caption encodings read from
    (or written to) their caches."""
    images = recipe_images(recipe, data_dir)
    source = images.cache_key if isinstance(images, ShapesDataset) else folder_digest(data_dir)
    digest = state_digest(("clip", clip))
    size = clip.image_size
    cache = home() / "data"
    file = cache / f"clip-{digest}-{source}.safetensors"
    embedded = ImageEmbeddingDataset(images, lambda x: clip.encode_image(fit_images(x, size)),
                                     clip_digest=digest, cache_file=file)  # fmt: skip
    held = held_out_scenes(SAMPLE_PAIRS, recipe.data.resolution)
    x = torch.stack([held[i][0] for i in range(len(held))])
    with torch.no_grad():
        pairs = SamplePairs(x, clip.encode_image(fit_images(x, size)),
                            [held[i][1] for i in range(len(held))])  # fmt: skip
    data = recaptioned(recipe, images, embedded)
    texts = [*captions(data), *pairs.captions]
    named = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:12]
    file = cache / f"clip-text-{digest}-{named}.safetensors"
    encodings = CaptionEncodings(texts, lambda p: _batched_caption(clip, p), cache_file=file)
    return CLIPView(data, embedded.embeddings, encodings, pairs)


def _batched_caption(clip: CLIP, prompts: list[str]) -> TextEmbedding:
    """:func:`~atelier.pipelines.unclip.read_caption` for a batch at once: sampling reads one
    prompt at a time for batch invariance, which a training cache does not need."""
    text = clip.text.encode(prompts)
    return TextEmbedding(text.states, text.mask, clip.encode_text(prompts))


def run_prior(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
              command: str) -> Path:  # fmt: skip
    if recipe.prior is None:
        raise RecipeError(f"{recipe.name} names no prior sizes")
    clip = base_model(
        recipe,
        "clip_model",
        clip_kind.KIND,
        role="samples the embedding space of the CLIP",
        train_with="shapes-clip",
    )
    clip.requires_grad_(False)
    # The data preparation this process does (embeddings not yet on disk) counts as training.
    before = process_cpu_seconds()
    view = _clip_view(recipe, clip, data_dir)
    space = LatentSpace.measure(view.embeddings)  # the per-dimension statistics
    config = replace(recipe.prior, embed_dim=clip.config.embed_dim, text_dim=clip.text.dim,
                     text_length=clip.text.max_length)  # fmt: skip
    torch.manual_seed(recipe.train.seed)
    prior = PriorTransformer(config)
    task = PriorTask(prior=prior, diffusion=recipe.prior_diffusion, space=space,
                     captions=view.captions, objective=recipe.unclip_objective, clip=clip,
                     samples=view.pairs, sample_options=recipe.unclip_sampling)  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, view.data, recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[TimestepLossLogger(recipe.prior_diffusion.n_train), ledger])  # fmt: skip
    final_weights(run_dir, "prior", prior)
    section, cpu = cost(recipe.name, ledger.total, trained="prior", base=recipe.clip_model,
                        what=f"its CLIP {recipe.clip_model}")  # fmt: skip
    section += (f"\n\n## Prior\n\n- over {config.embed_dim}-dimensional image embeddings of "
                f"{recipe.clip_model}, normalised per dimension; reads {config.text_length} "
                f"text states of {config.text_dim}\n- x_0 prediction, "
                f"{recipe.prior_diffusion.beta_schedule} schedule")  # fmt: skip
    card = model_card(recipe.name, command=command, init_from=None, cpu=cpu, body=section,
                      recipe=asdict(recipe))  # fmt: skip
    clip_card = (resolve(recipe.clip_model) / "README.md").read_text()
    model = TrainedPrior(recipe.name, prior.eval(), recipe.prior_diffusion, space, clip)
    return save_prior(model, run_dir / "model", card=card, clip_card=clip_card)


def run_decoder(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
                command: str) -> Path:  # fmt: skip
    if recipe.unet is None:
        raise RecipeError(f"{recipe.name} names no unet sizes for its decoder")
    prior = base_model(recipe, "prior_model", unclip_prior.KIND,
                       role="is exported with the unCLIP prior",
                       train_with="shapes-unclip-prior")  # fmt: skip
    clip = prior.clip.requires_grad_(False)
    if recipe.data.resolution % 2 ** (len(recipe.unet.block_channels) - 1):
        raise RecipeError(f"data.resolution {recipe.data.resolution} is not a multiple of the "
                          "decoder's downsampling")  # fmt: skip
    before = process_cpu_seconds()
    view = _clip_view(recipe, clip, data_dir)
    config = replace(recipe.unet, image_embed_dim=clip.config.embed_dim,
                     context_dim=clip.text.dim)  # fmt: skip
    torch.manual_seed(recipe.train.seed)
    decoder = UNet(config)
    task = DecoderTask(decoder=decoder, diffusion=recipe.diffusion, captions=view.captions,
                       objective=recipe.unclip_objective, clip=clip, samples=view.pairs,
                       sample_options=recipe.unclip_sampling)  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, view.data, recipe.train, run_dir=run_dir, resume=resume,
          callbacks=[TimestepLossLogger(recipe.diffusion.n_train), ledger])  # fmt: skip
    final_weights(run_dir, "decoder", decoder)
    section, cpu = cost(recipe.name, ledger.total, trained="decoder", base=recipe.prior_model,
                        what=f"its prior {recipe.prior_model} (with its CLIP)")  # fmt: skip
    section += (f"\n\n## unCLIP\n\n- prior {recipe.prior_model}, with its CLIP (in prior/clip/)\n"
                f"- decoder: {recipe.data.resolution} px pixels, {config.image_embed_tokens} "
                f"image-embedding tokens beside the caption's CLIP states\n"
                f"- sampling defaults: {recipe.unclip_sampling.summary()}")  # fmt: skip
    card = model_card(recipe.name, command=command, init_from=None, cpu=cpu,
                      body=section + METRICS_TODO, recipe=asdict(recipe))  # fmt: skip
    model = UnCLIPModel(recipe.name, prior, decoder.eval(), recipe.diffusion,
                        recipe.data.resolution, recipe.unclip_sampling)  # fmt: skip
    return save_unclip(model, run_dir / "model", card=card)
