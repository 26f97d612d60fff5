"""One resource budget for everything a user may receive from someone else: how many pixels an
image may have, how many sampler steps and images a command may ask for, how large a network a
model folder may build, and the seeds a generator takes.

The CLI, ``replay``, the model loader and the server read the same :func:`budget`. Its values
come from the environment (``ATELIER_MAX_PIXELS`` and the like) or from the root command's
options (``atelier --max-pixels N generate ...``); every refusal names the limit and the option
that raises it, so a user who means it can.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

# Seeds are what torch.Generator.manual_seed takes (64 bits, unsigned); a larger one overflowed.
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Budget:
    """Upper bounds on one command's (or one loaded model's) work and memory."""

    max_pixels: int = 1024 * 1024  # per image: 1024 x 1024, 256 times the default model's
    max_steps: int = 1000  # sampler steps per image (diffusers' schedules have 1000 levels)
    max_images: int = 10_000  # images one command makes (prompts x -n x candidates)
    max_parameters: int = 1_000_000_000  # one network: 4 GB in float32
    max_prompt_chars: int = 20_000  # characters of one prompt

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")


# Each limit: its environment variable and root option.
ENV = {f.name: "ATELIER_" + f.name.upper() for f in dataclasses.fields(Budget)}
# Limits the root command's options set, for the length of that command.
_override: dict[str, int] = {}


def budget() -> Budget:
    """The budget in force: the root command's options, else the environment, else defaults."""
    values: dict[str, int] = {}
    for name, var in ENV.items():
        text = os.environ.get(var)
        if text is not None:
            try:
                values[name] = int(text)
            except ValueError:
                raise ValueError(f"{var}={text!r} is not an integer") from None
    return Budget(**{**values, **_override})


def set_budget(**changes: int | None) -> Budget:
    """Raise or lower limits until :func:`reset_budget` (the root command's options, for the
    length of that command); None keeps a limit as it is."""
    given = {k: v for k, v in changes.items() if v is not None}
    Budget(**given)  # validates the values
    _override.update(given)
    return budget()


def reset_budget() -> None:
    _override.clear()


class OverBudget(ValueError):
    """A request past a limit; the message names the limit and how to raise it."""


UNITS = {"max_pixels": "pixels", "max_steps": "steps", "max_images": "images",
         "max_parameters": "parameters", "max_prompt_chars": "characters"}  # fmt: skip


def _refuse(what: str, limit: str, value: int) -> OverBudget:
    option = "--" + limit.replace("_", "-")
    return OverBudget(
        f"{what} is over the limit of {value:,} {UNITS[limit]} (raise it with "
        f"`atelier {option} N ...` or {ENV[limit]}=N)"
    )


def check_pixels(width: int, height: int, what: str = "the image") -> None:
    b = budget()
    if width < 1 or height < 1:
        raise ValueError(f"{what} is {width}x{height}; both sides must be at least 1 pixel")
    if width * height > b.max_pixels:
        raise _refuse(f"{what} ({width}x{height} = {width * height:,} pixels)", "max_pixels",
                      b.max_pixels)  # fmt: skip


def check_steps(steps: int) -> None:
    b = budget()
    if steps > b.max_steps:
        raise _refuse(f"{steps:,} steps", "max_steps", b.max_steps)


def check_images(count: int) -> None:
    b = budget()
    if count > b.max_images:
        raise _refuse(f"{count:,} images", "max_images", b.max_images)


def check_parameters(count: int, what: str) -> None:
    b = budget()
    if count > b.max_parameters:
        raise _refuse(f"{what} ({count:,} parameters)", "max_parameters", b.max_parameters)


def check_prompt(prompt: str) -> None:
    b = budget()
    if len(prompt) > b.max_prompt_chars:
        raise _refuse(f"a prompt of {len(prompt):,} characters", "max_prompt_chars",
                      b.max_prompt_chars)  # fmt: skip


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is a whole number from 0 to 2^64 - 1, got {seed!r}")
