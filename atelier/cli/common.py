"""What several commands share: loading a model through its kind, applying a command's options
to the model's own, and choosing among candidates. Each failure exits with a clear message."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from atelier.budget import check_seed
from atelier.cli.errors import fail
from atelier.shapes.suite_name import SUITE_NAME

# The command modules import torch, the models and the pipelines inside their commands, so that
# `atelier --help` and a mistyped flag answer without loading them (tests/test_cli_startup.py).
if TYPE_CHECKING:
    from atelier.kinds import diffusion
    from atelier.kinds.base import TextToImage
    from atelier.kinds.registry import Listed
    from atelier.pipelines.rerank import Choice, RerankedText2Image, Scorer

# Diffusion's sampling flags, grouped apart in --help: other families take other options.
DIFFUSION_PANEL = "Diffusion options"
STEPS = typer.Option(None, "--steps", help="Sampler steps (default: the model's).",
                     rich_help_panel=DIFFUSION_PANEL)  # fmt: skip
GUIDANCE = typer.Option(None, "--guidance", help="CFG scale (default: the model's).",
                        rich_help_panel=DIFFUSION_PANEL)  # fmt: skip
GUIDANCE_RESCALE = typer.Option(
    None, "--guidance-rescale", help="CFG rescale phi in [0, 1] (default: the model's).",
    rich_help_panel=DIFFUSION_PANEL,
)  # fmt: skip
OPTION = typer.Option(
    [], "--option", "-O",
    help="A sampling option of the model's kind, NAME=VALUE (repeatable); `atelier inspect "
    "MODEL` lists them.",
)  # fmt: skip


LORA = typer.Option(
    [], "--lora",
    help="NAME[:WEIGHT] (repeatable): a LoRA (installed name or .safetensors file, diffusers' or "
    "kohya's keys) at that multiplier, default 1; added to each prompt as <lora:NAME:WEIGHT>, "
    "which also works typed in a prompt.",
)  # fmt: skip
EMBEDDING = typer.Option(
    [], "--embedding",
    help="A textual-inversion embedding to load (installed name or learned_embeds file; "
    "installed ones also load when a prompt uses their word). Repeatable.",
)  # fmt: skip


def personalised(model: Any, prompts: Sequence[str], loras: Sequence[str],
                 embeddings: Sequence[str]) -> list[str]:  # fmt: skip
    """``prompts`` with the ``--lora`` flags as ``<lora:...>`` tags, after loading the
    ``--embedding`` s into ``model`` (a diffusion model; another kind exits 2 naming it)."""
    from atelier.kinds import diffusion
    from atelier.pipelines.lora_tags import parse_lora_spec

    if not loras and not embeddings:
        return list(prompts)
    if not isinstance(model, diffusion.Model):
        raise fail(f"{model.name} is not a diffusion model: --lora and --embedding adapt the "
                   "UNet and text encoder of one")  # fmt: skip
    try:
        specs = [parse_lora_spec(item) for item in loras]
        model.use_embeddings(embeddings)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    tags = "".join(f" <lora:{name}:{weight:g}>" for name, weight in specs)
    return [prompt + tags for prompt in prompts]


def load_generator(model: str) -> TextToImage:
    """A text-to-image model of any kind, or exit 2 naming the problem."""
    from atelier.kinds.registry import load_text_to_image

    try:
        return load_text_to_image(model)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def describe_generator(model: str) -> Listed:
    """A text-to-image model's listing from its config.json alone (fast: options are checked
    against it before the weights load), or exit 2 naming the problem."""
    from atelier.kinds.registry import describe

    try:
        listed = describe(model)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise fail(str(err)) from None
    if not listed.facts.text_to_image:
        raise fail(f"{model} is a {listed.facts.title} model, which does not draw from text")
    return listed


def load_diffusion(model: str, command: str) -> diffusion.Model:
    """A diffusion model for a command only diffusion can do (editing), or exit 2."""
    from atelier.kinds import diffusion
    from atelier.kinds.registry import load_model

    try:
        return load_model(model, want=diffusion.KIND)
    except (FileNotFoundError, ValueError) as err:
        raise fail(f"{command} needs a diffusion model: {err}") from None


def painter_options(model: str, command: str, flags: dict[str, Any], items: Sequence[str] = ()
                    ) -> tuple[TextToImage, Any]:  # fmt: skip
    """A model that inpaints and outpaints (diffusion, or a token model) and the command's
    options for it, checked against its config.json before the weights load; another kind, or
    any problem, exits 2 naming it."""
    from atelier.kinds.registry import KINDS, PAINTING_KINDS, describe, load_painter, with_article

    needs = f"{command} needs a diffusion or token model"
    try:
        listed = describe(model)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise fail(f"{needs}: {err}") from None
    if listed.kind not in PAINTING_KINDS:
        raise fail(f"{needs}: {model} is {with_article(KINDS[listed.kind].label)}")
    options = options_for(listed.name, listed.facts.defaults, flags, items)
    try:
        return load_painter(listed.path), options
    except (FileNotFoundError, ValueError) as err:
        raise fail(f"{needs}: {err}") from None


def generator_options(model: str, flags: dict[str, Any], items: Sequence[str] = ()
                      ) -> tuple[Listed, Any, TextToImage | None]:  # fmt: skip
    """A text-to-image model's listing and the command's options for it, checked against the
    defaults its config.json states before any weight loads (a kind whose defaults live only in
    the loaded model is loaded, and returned so it is not loaded twice; else None)."""
    listed = describe_generator(model)
    loaded = None if listed.facts.defaults is not None else load_generator(model)
    defaults = listed.facts.defaults if loaded is None else loaded.defaults
    return listed, options_for(listed.name, defaults, flags, items), loaded


def options_for(name: str, defaults: Any, flags: dict[str, Any], items: Sequence[str] = ()) -> Any:
    """``defaults`` (a model's, of its kind's options type) with the command's flags that were
    given (not None) and its ``--option NAME=VALUE`` items; an option the model's kind does not
    take, or a value past the budget, exits naming what to do instead."""
    from atelier.kinds.base import parse_assignments, with_options

    given = {k: v for k, v in flags.items() if v is not None}
    try:
        given |= parse_assignments(items)
        return with_options(defaults, given, who=name)
    except ValueError as err:
        raise fail(str(err)) from None


def chosen_seed(seed: int) -> int:
    """``seed``, or for -1 one drawn at random (as AUTOMATIC1111 does; the PNG records it)."""
    if seed == -1:
        return secrets.randbelow(2**32)
    check_seed(seed)
    return seed


def ranking_scorer(candidates: int, rerank: str | None, clip_model: str) -> Scorer | None:
    """What chooses among ``candidates`` (None for one candidate), the options checked."""
    from atelier.eval.clip_metrics import clip_scorer
    from atelier.kinds.clip import load_clip

    if candidates < 1:
        raise fail("--candidates must be at least 1")
    if rerank not in (None, "clip"):
        raise fail(f"--rerank {rerank!r} is not known; valid: clip")
    if candidates > 1 and rerank is None:
        raise fail("--candidates N > 1 needs --rerank clip to say how to choose")
    if candidates == 1:
        return None
    try:
        return clip_scorer(load_clip(clip_model))
    except (FileNotFoundError, ValueError) as err:
        raise fail(f"--rerank clip needs a CLIP model: {err}") from None


def reranker(model: TextToImage, candidates: int, rerank: str | None, clip_model: str
             ) -> RerankedText2Image:  # fmt: skip
    """``model`` drawing ``candidates`` per image (a plain one keeps candidate 0 only)."""
    from atelier.pipelines.rerank import RerankedText2Image

    return RerankedText2Image(model, ranking_scorer(candidates, rerank, clip_model), candidates)


def ranked_extra(choice: Choice, requested: int, candidates: int, rerank: str | None) -> dict:
    """What a reranked image's PNG records beside its own (kept) seed."""
    if candidates == 1:
        return {}
    return {"rerank": rerank, "candidates": candidates, "requested_seed": requested,
            "clip_score": round(choice.score, 4)}  # fmt: skip


# Steering by gradient (generate), grouped apart in --help.
STEERING_PANEL = "Steering by gradient (diffusion models)"


def steering_spec(clip_guidance: float | None, clip_model: str, classifier_guidance: float | None,
                  classifier_model: str | None, *, cutouts: int, cut_power: float,
                  tv_scale: float, range_scale: float) -> Any:  # fmt: skip
    """The command's steering (None without --clip-guidance or --classifier-guidance), checked
    before any model loads; bad values exit naming the flag."""
    from atelier.kinds.steering import DEFAULT_GUIDES, SteerSpec

    if clip_guidance is not None and classifier_guidance is not None:
        raise fail("give --clip-guidance or --classifier-guidance, not both")
    if clip_guidance is None and classifier_guidance is None:
        return None
    method = "clip" if clip_guidance is not None else "classifier"
    model = clip_model if method == "clip" else classifier_model or DEFAULT_GUIDES["classifier"]
    scale = clip_guidance if method == "clip" else classifier_guidance
    try:
        return SteerSpec(method, scale, model, cutouts=cutouts, cut_power=cut_power,
                         tv_scale=tv_scale, range_scale=range_scale)  # fmt: skip
    except ValueError as err:
        raise fail(str(err)) from None


def steer(model: TextToImage, spec: Any) -> TextToImage:
    """``model`` steered by ``spec`` (itself when None), or exit 2 naming the problem."""
    from atelier.kinds.steering import steered

    if spec is None:
        return model
    try:
        return steered(model, spec)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def suite_of(model: str) -> str:
    """The suite of what ``model``'s card says it was trained on: digits for real MNIST digits,
    emoji for the Noto emoji, shapes-bench otherwise."""
    from atelier.kinds.card import card_source
    from atelier.kinds.folder import resolve

    try:
        source = card_source(resolve(model))
    except FileNotFoundError:
        return SUITE_NAME  # the loader names the problem, after the checks that need no model
    return {"mnist": "digits", "emoji": "emoji"}.get(source or "", SUITE_NAME)
