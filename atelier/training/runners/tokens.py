"""Train a token model: DALL-E's autoregressive transformer (``kind = "dalle"``) or MaskGIT's
masked one (``kind = "maskgit"``), on the codes of a trained image tokenizer.

The training images are encoded once by the tokenizer ``recipe.tokenizer_model`` names and kept
as a token dataset under ``$ATELIER_HOME/data``. A prefix transformer reads the captions as BPE
ids, from a BPE tokenizer trained on them; a cross-attention one reads the frozen text encoder
``recipe.text_encoder`` names, whose states of every caption are computed once and kept under
``$ATELIER_HOME/data`` too (``text/state_cache.py``, as the MiniLM diffusion recipes do). The
model folder holds both tokenizers (or the encoder's name) beside the transformer, and its card's
CPU time includes the image tokenizer's.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch

from atelier.data.latents import module_digest
from atelier.data.shapes import ShapesDataset
from atelier.data.tokens import TokenDataset
from atelier.kinds import dalle, maskgit
from atelier.kinds import tokenizer as tokenizer_kind
from atelier.kinds.card import cost, metrics_todo, model_card
from atelier.kinds.token_model import TokenModel, save_token_model
from atelier.paths import home
from atelier.shapes.bench import load_suite
from atelier.text.factory import build_text_encoder
from atelier.text.minilm import MiniLMTextEncoder
from atelier.text.state_cache import preload_text_states
from atelier.text.tokenizer import train_bpe
from atelier.training.callbacks import CPULedger, process_cpu_seconds
from atelier.training.checkpoint import final_weights
from atelier.training.loop import train
from atelier.training.real_samples import real_samples
from atelier.training.recipe import Recipe, RecipeError
from atelier.training.recipe_data import (
    base_model,
    captions,
    folder_digest,
    recaptioned,
    recipe_images,
    trained_on,
)
from atelier.training.recipes import RECIPES
from atelier.training.token_tasks import AutoregressiveTask, MaskedTokenTask

SAMPLE_PROMPTS = 48


def run(recipe: Recipe, run_dir: Path, *, resume: bool, data_dir: Path | None,
        command: str) -> Path:  # fmt: skip
    family = {"dalle": dalle.FAMILY, "maskgit": maskgit.FAMILY}[recipe.kind]
    if recipe.token_transformer is None:
        raise RecipeError(f"{recipe.name} names no token_transformer sizes")
    image_tokenizer = base_model(recipe, "tokenizer_model", tokenizer_kind.KIND,
                                 role="learns the codes of the image tokenizer",
                                 train_with=_recipe_of(recipe.tokenizer_model))  # fmt: skip
    if image_tokenizer.resolution != recipe.data.resolution:
        raise RecipeError(
            f"the image tokenizer {recipe.tokenizer_model} was trained at "
            f"{image_tokenizer.resolution} px but the data is {recipe.data.resolution} px: set "
            f"data.resolution={image_tokenizer.resolution}"
        )
    # The data preparation this process does (tokens not yet on disk) counts as training.
    before = process_cpu_seconds()
    images = recipe_images(recipe, data_dir)
    source = images.cache_key if isinstance(images, ShapesDataset) else folder_digest(images.root)
    codebook = image_tokenizer.tokenizer.codebook_size
    key = f"tokens-{module_digest(image_tokenizer.tokenizer)}-{source}.safetensors"
    data = TokenDataset(images, image_tokenizer.tokenizer.encode, codebook_size=codebook,
                        cache_file=home() / "data" / key)  # fmt: skip
    data = recaptioned(recipe, images, data)
    scores = None
    if recipe.data.source == "shapes":
        prompts = [bp.prompt for bp in load_suite() if bp.split == "seen"][::5][:SAMPLE_PROMPTS]
    else:
        prompts, scores = real_samples(recipe, images, data_dir, SAMPLE_PROMPTS)
    config = replace(recipe.token_transformer, codebook_size=codebook, grid=image_tokenizer.grid)
    text_tokenizer, text_encoder, text_config = None, None, None
    if config.cross_attention:
        text_encoder, text_config = _frozen_text_encoder(recipe), recipe.text_encoder
        preload_text_states(text_encoder, ["", *captions(data), *prompts], home() / "data")
        reading = (f"{config.text_length} {recipe.text_encoder.kind} states (layer "
                   f"{recipe.text_encoder.hidden_layer}) read by cross-attention")  # fmt: skip
    else:
        if recipe.text_encoder is not None:
            raise RecipeError(
                f"{recipe.name} reads captions as BPE ids, so text_encoder is unused: set "
                "token_transformer.text_conditioning=cross_attention (and context_dim) to read it"
            )
        text_tokenizer = train_bpe(captions(data), vocab_size=recipe.bpe_vocab)
        config = replace(config, text_vocab=text_tokenizer.vocab_size)
        reading = f"{config.text_length} BPE text positions ({text_tokenizer.vocab_size} ids)"
    torch.manual_seed(recipe.train.seed)
    network = family.network(config)
    options = recipe.token_sampling or family.options()
    if not isinstance(options, family.options):
        raise RecipeError(f"token_sampling of a {recipe.kind} recipe must be "
                          f"{family.options.__name__}, got {type(options).__name__}")  # fmt: skip
    task_class = AutoregressiveTask if recipe.kind == "dalle" else MaskedTokenTask
    task = task_class(network, text_tokenizer, text_encoder=text_encoder,
                      objective=recipe.token_objective, image_tokenizer=image_tokenizer.tokenizer,
                      sample_prompts=prompts, sample_options=options,
                      sample_scores=scores)  # fmt: skip
    ledger = CPULedger(preparation=process_cpu_seconds() - before)
    train(task, data, recipe.train, run_dir=run_dir, resume=resume, callbacks=[ledger])
    final_weights(run_dir, "transformer", network)
    section, cpu = cost(recipe.name, ledger.total, trained="transformer",
                        base=recipe.tokenizer_model,
                        what=f"its image tokenizer {recipe.tokenizer_model}")  # fmt: skip
    grid = image_tokenizer.grid
    section += (
        f"\n\n## Tokens\n\n- {grid}x{grid} codes of {codebook} from {recipe.tokenizer_model}, "
        f"{reading}\n"
        f"- sampling defaults: {options.summary()}"
    )
    card = model_card(recipe.name, command=command, init_from=None, cpu=cpu,
                      body=section + metrics_todo(recipe.data.source), recipe=asdict(recipe),
                      trained_on=trained_on(recipe, data_dir))  # fmt: skip
    model = TokenModel(family, recipe.name, network.eval(), image_tokenizer, text_tokenizer,
                       options, text_encoder=text_encoder,
                       text_encoder_config=text_config)  # fmt: skip
    return save_token_model(model, run_dir / "model", card=card)


def _recipe_of(model: str) -> str:
    """The recipe that trains the model named ``model`` (its own name, if a recipe has it)."""
    return model if model in RECIPES else "shapes-vqgan"


def _frozen_text_encoder(recipe: Recipe) -> MiniLMTextEncoder:
    """The frozen encoder a cross-attention recipe's ``text_encoder`` names, checked against the
    transformer's window and width."""
    text, sizes = recipe.text_encoder, recipe.token_transformer
    if text is None or text.kind != "minilm":
        raise RecipeError(
            f"{recipe.name} reads captions by cross-attention, which needs the frozen MiniLM as "
            "its text_encoder (kind 'minilm'), as shapes-dalle-minilm and shapes-maskgit-minilm "
            "name it"
        )
    encoder = build_text_encoder(text)
    if (sizes.text_length, sizes.context_dim) != (encoder.max_length, encoder.dim):
        raise RecipeError(
            f"the transformer reads {sizes.text_length} text states of {sizes.context_dim} but "
            f"the text encoder gives {encoder.max_length} of {encoder.dim}: set "
            f"token_transformer.text_length={encoder.max_length} and "
            f"token_transformer.context_dim={encoder.dim}"
        )
    return encoder
