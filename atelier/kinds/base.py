"""What every kind of model folder provides, and the one generation contract of text-to-image.

A kind (``kinds/<kind>.py``) knows how its folders are loaded, saved and described; a
text-to-image kind's loaded model also answers :class:`TextToImage`. Options that only some
families have (steps and sampler for diffusion, temperature for token models) live in each
kind's own options dataclass; :func:`with_options` applies a command's or a request's overrides
to a model's defaults and refuses, naming the valid ones, an option the kind does not take.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from PIL import Image
from torch import nn

from atelier.budget import check_steps


@runtime_checkable
class TextToImage(Protocol):
    """A loaded text-to-image model of any family.

    ``model(prompts, seeds=...)`` returns one PIL image per prompt, image i made from its own
    generator seeded ``seeds[i]`` (a batch gives the same images as single runs). ``options``
    is an instance of ``type(model.defaults)`` (None: the defaults); ``callback`` is called
    after every step with an object carrying ``i`` and ``total``; ``size`` is the image side
    in pixels (None: ``resolution``), refused with a ValueError where a kind cannot make it.
    A kind may also count its network passes per image, ``model.network_evaluations(options)``
    (see :func:`network_evaluations`).
    """

    name: str
    resolution: int
    defaults: Any
    path: Path | None

    @property
    def model_hash(self) -> str: ...

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: Any = None,
        callback: Callable[[Any], None] | None = None,
        size: int | None = None,
    ) -> list[Image.Image]: ...


@runtime_checkable
class Interpolates(Protocol):
    """A text-to-image model that can draw the path between two of its images (``atelier
    interpolate``): ``frames`` images from (prompts[0], seeds[0]) to (prompts[1], seeds[1]),
    the noise along the arc between the seeds' and the text along the line between the
    prompts' embeddings. Token models cannot: their codes are discrete."""

    def interpolate(
        self,
        prompts: tuple[str, str],
        *,
        seeds: tuple[int, int],
        frames: int,
        options: Any = None,
    ) -> list[Image.Image]: ...


@dataclass(frozen=True)
class Facts:
    """What a listing shows of a model folder without loading its weights."""

    title: str  # e.g. "latent diffusion"
    resolution: int | None = None
    text_to_image: bool = False
    options: tuple[OptionSpec, ...] = ()
    # The model's own default options, where config.json states them (checked before loading).
    defaults: Any = None


class ModelKind(ABC):
    """One kind of model folder: how it is loaded, saved and described."""

    label: str = "model"  # what errors call it: "CLIP model", "text-to-image diffusion model"

    @abstractmethod
    def load(self, folder: Path, config: dict[str, Any], *, device: str | torch.device) -> Any:
        """The folder's model; every problem a ValueError or FileNotFoundError naming it."""

    @abstractmethod
    def save(self, model: Any, folder: Path, *, card: str, dtype: torch.dtype) -> Path:
        """Write ``model`` as a folder (``config.json`` last); ``dtype`` for its weights."""

    @abstractmethod
    def facts(self, config: dict[str, Any]) -> Facts:
        """The listing's facts from ``config.json`` alone."""

    @abstractmethod
    def modules(self, model: Any) -> dict[str, nn.Module]:
        """The named networks of a loaded model (``atelier inspect`` prints them)."""

    @abstractmethod
    def renamed(self, model: Any, name: str) -> Any:
        """``model`` under a new name (``atelier export --name``)."""

    def with_defaults(self, model: Any, **changes: Any) -> Any:
        """``model`` with new default options (``atelier export --steps ...``)."""
        raise ValueError("this kind of model has no sampling options to change")


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class OptionSpec:
    """One option of a kind: what a page shows and a command line parses."""

    name: str
    type: str  # "int", "float", "bool" or "str"
    default: Any
    choices: tuple[str, ...] | None = None
    # A number's inclusive bounds, where the options dataclass's field states them in its
    # metadata (``field(default=1.0, metadata={"minimum": 0.0, "maximum": 1.0})``).
    minimum: float | None = None
    maximum: float | None = None


def _base_type(annotation: Any) -> tuple[type, tuple[str, ...] | None]:
    if typing.get_origin(annotation) is typing.Literal:
        return str, tuple(str(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    return annotation, None


def option_specs(options_type: type) -> tuple[OptionSpec, ...]:
    """The fields of an options dataclass as :class:`OptionSpec` s."""
    hints = typing.get_type_hints(options_type)
    defaults = options_type()
    specs = []
    for f in dataclasses.fields(options_type):
        base, choices = _base_type(hints[f.name])
        bounds = (f.metadata.get("minimum"), f.metadata.get("maximum"))
        specs.append(OptionSpec(f.name, base.__name__, getattr(defaults, f.name), choices, *bounds))
    return tuple(specs)


def _parse(spec: OptionSpec, value: Any) -> Any:
    """``value`` (a string from a command line, or JSON) as the option's type."""
    name = spec.name
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"option {name} takes true or false, got {value!r}")
    if spec.type == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"option {name} takes an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"option {name} takes an integer, got {value!r}") from None
    if spec.type == "float":
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"option {name} takes a finite number, got {value!r}")
        return number
    text = str(value)
    if spec.choices is not None and text not in spec.choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(spec.choices)}")
    return text


def with_options(defaults: Any, given: Mapping[str, Any], *, who: str) -> Any:
    """``defaults`` (an options dataclass) with ``given`` overrides (values may be strings);
    ``who`` names the model in errors. An option the kind does not take is refused, naming
    the ones it does; a step count past the budget (any ``steps`` or ``*_steps`` field) is
    refused naming the limit."""
    specs = {s.name: s for s in option_specs(type(defaults))}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        takes = ", ".join(specs) or "none"
        raise ValueError(
            f"{who} takes no {', '.join(unknown)} option{'s' if len(unknown) > 1 else ''}; "
            f"its options: {takes}"
        )
    values = {k: _parse(specs[k], v) for k, v in given.items() if v is not None}
    try:
        options = dataclasses.replace(defaults, **values)
    except TypeError as err:
        raise ValueError(f"bad options for {who} ({err})") from None
    for f in dataclasses.fields(options):
        count = getattr(options, f.name)
        # Every step count a kind takes (diffusion's steps, a two-stage model's prior_steps).
        if (f.name == "steps" or f.name.endswith("_steps")) and isinstance(count, int):
            check_steps(count)
    return options


def options_label(options: Any) -> str:
    """A short name of ``options`` for file names: the kind's own ``label()``, else its values."""
    label = getattr(options, "label", None)
    if label is not None:
        return label()
    return "-".join(f"{k}{v}" for k, v in dataclasses.asdict(options).items())


def options_summary(options: Any) -> str:
    """One line on ``options`` for a model card: the kind's own ``summary()``, else its values."""
    summary = getattr(options, "summary", None)
    if summary is not None:
        return summary()
    return ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(options).items())


def network_evaluations(model: Any, options: Any) -> int | None:
    """Network passes per image ``model`` makes with ``options`` (the NFE a sweep reports): the
    kind's own ``network_evaluations(options)``, else None for a kind that does not count them
    (optional, so a new family generates without it)."""
    count = getattr(model, "network_evaluations", None)
    return None if count is None else count(options)


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["steps=10", "sampler=euler"]`` -> {"steps": "10", "sampler": "euler"}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"an option is NAME=VALUE, got {item!r}")
        out[name.strip().replace("-", "_")] = value.strip()
    return out
