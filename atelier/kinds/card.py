"""Model cards: the README.md of every model folder, whatever its kind.

A card states how the model was made (the exact command, from scratch or from which model, the
CPU time including what it stands on), what it measured, and the recipe. ``atelier eval
--card`` replaces its shapes-bench section with fresh scores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from atelier.kinds.folder import resolve

SHAPES_BENCH_HEADING = "## shapes-bench"
# Under the heading `atelier eval --card` replaces, so the placeholder never outlives the scores.
METRICS_TODO = f"\n\n{SHAPES_BENCH_HEADING}\n\nNot measured yet: run `atelier eval MODEL --card`."
# What a card says a model was trained on (``Trained by atelier ... on <this>.``), by the data
# source of its recipe; `atelier eval` reads it back to pick the suite that measures the model.
TRAINED_ON = {
    "shapes": "the shapes world",
    "mnist": "real MNIST digits",
    "emoji": "real Noto emoji",
}
# The section `atelier eval --card` writes for each source's suite.
EVAL_HEADINGS = {"shapes": SHAPES_BENCH_HEADING, "mnist": "## digits", "emoji": "## emoji"}


def metrics_todo(source: str = "shapes") -> str:
    """The card's placeholder for the scores of the suite that measures a model trained on
    ``source``, under the heading `atelier eval --card` replaces."""
    return f"\n\n{EVAL_HEADINGS[source]}\n\nNot measured yet: run `atelier eval MODEL --card`."


def card_source(folder: Path) -> str | None:
    """The data source (a key of :data:`TRAINED_ON`) a model folder's card names, if any."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return None
    match = re.search(r"^Trained by atelier .*? on (.+?)\.$", card.read_text(), re.MULTILINE)
    found = match.group(1) if match else None
    return next((source for source, text in TRAINED_ON.items() if text == found), None)


def model_card(
    name: str,
    *,
    command: str,
    init_from: str | None,
    cpu: str,
    body: str,
    recipe: dict[str, Any],
    trained_on: str = TRAINED_ON["shapes"],
) -> str:
    """The card of a model trained by ``command`` (what the user typed; it reproduces the
    model). ``cpu`` is the CPU time line (see :func:`cost`)."""
    origin = "from scratch" if init_from is None else f"from {init_from}"
    return (
        f"# {name}\n\nTrained by atelier {origin} on {trained_on}.\n\n"
        f"- Reproduce: `{command}`\n- Training CPU time: {cpu}\n\n{body}\n\n## Recipe\n\n"
        f"```json\n{json.dumps(recipe, indent=2, default=str)}\n```\n"
    )


def cpu_hours_in_card(folder: Path) -> float | None:
    """The training CPU hours a model card states, if it states them."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    match = re.search(r"Training CPU time: (?:about )?([0-9.]+) h", card.read_text())
    return float(match.group(1)) if match else None


def cost(
    name: str, total_cpu: float, *, trained: str, base: str | None = None, what: str = ""
) -> tuple[str, str]:
    """The training cost of a model with what it stands on (``base``: the model it fine-tunes,
    whose card already counts its own base, or its autoencoder; ``what`` says which, as in
    "its autoencoder shapes-vae"), as the card's cost section and its CPU time line. The line
    states the sum, so a model fine-tuned from this one in turn counts the whole chain."""
    hours = total_cpu / 3600
    own = f"{hours:.2f} h (user + system, all sessions)"
    section = f"## Training cost\n\n- {name} ({trained}): {hours:.2f} CPU-h"
    base_hours = cpu_hours_in_card(resolve(base)) if base is not None else None
    if base_hours is None:
        return section, own
    section += f"\n- {what}: {base_hours:.2f} CPU-h\n- in all: {hours + base_hours:.2f} CPU-h"
    line = (f"{hours + base_hours:.2f} h in all ({hours:.2f} h for this run, "
            f"{base_hours:.2f} h for {what})")  # fmt: skip
    return section, line


def replace_section(card: str, section: str, heading: str = SHAPES_BENCH_HEADING) -> str:
    """``card`` with its ``heading`` section replaced by ``section`` (appended if absent)."""
    start = card.find(heading)
    if start < 0:
        return card.rstrip("\n") + "\n\n" + section
    end = card.find("\n## ", start + len(heading))
    rest = card[end + 1 :] if end >= 0 else ""
    return card[:start] + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")


def renamed(card: str, old: str, new: str | None) -> str:
    """``card`` with its title line naming ``new`` (the rest, e.g. the training command that made
    the weights under the old name, stays as written)."""
    title = f"# {old}\n"
    if new and card.startswith(title):
        return f"# {new}\n" + card[len(title) :]
    return card


def with_note(card: str, note: str) -> str:
    """``card`` with the paragraph ``note`` after its first one (the line saying how the model
    was trained), say where it was installed and what it replaces."""
    title, _, rest = card.partition("\n\n")
    first, _, body = rest.partition("\n\n")
    return f"{title}\n\n{first}\n\n{note}\n\n{body}"


# A card's shapes-bench table's last row: accuracy with its interval on seen, held-out and all
# prompts, e.g. ``overall    0.74 [0.70,0.79]    0.21 [0.15,0.27]    0.61 [0.57,0.65]``.
_OVERALL = re.compile(r"^overall\s+(\S+ \[\S+\])\s+(\S+ \[\S+\])\s+(\S+ \[\S+\])\s*$", re.MULTILINE)
SUMMARY_CHARS = 240


def card_summary(folder: Path) -> str:
    """The first paragraph of a model folder's card (the line under its title), on one line,
    cut at a sentence end near :data:`SUMMARY_CHARS`; "" without a card."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return ""
    paragraphs = [p for p in card.read_text().split("\n\n") if p.strip()]
    body = [p for p in paragraphs if not p.lstrip().startswith("#")]
    text = " ".join(body[0].split()) if body else ""
    if len(text) <= SUMMARY_CHARS:
        return text
    cut = text.rfind(". ", 0, SUMMARY_CHARS)
    return text[: cut + 1] if cut > 0 else text[: SUMMARY_CHARS - 1] + "…"


def card_figures(folder: Path) -> list[tuple[str, str]]:
    """The headline figures a model folder's card states, as (name, value) pairs: shapes-bench
    accuracy over all prompts and over held-out ones (with 95% intervals), and training CPU
    hours. A figure the card does not state is left out."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return []
    text = card.read_text()
    figures = []
    start = text.find(SHAPES_BENCH_HEADING)
    match = _OVERALL.search(text, start) if start >= 0 else None
    if match:
        _, held_out, every = (m.replace(",", ", ") for m in match.groups())
        figures += [("shapes-bench accuracy", every), ("on held-out prompts", held_out)]
    hours = cpu_hours_in_card(Path(folder))
    if hours is not None:
        figures.append(("training", f"{hours:.2f} CPU-h"))
    return figures
