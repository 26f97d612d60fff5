"""``atelier eval MODEL --suite digits|emoji``: a model trained on a real set, measured on its
held-out pictures, as JSON and HTML (``atelier eval`` picks the suite from the model card).

- digits: every digit in the six training phrasings and three held-out ones, ``--samples``
  images each, read by the digit judge (``mnist-classifier``): the share read as asked per
  digit with 95% intervals; FID/KID in the judge's features against the 1,000 held-out digits,
  beside as many training digits against them (the floor).
- emoji: the caption of every held-out picture (names no training run saw) and 64 training
  captions: FID/KID/precision/recall against the held-out pictures in emoji-features' and
  emoji-clip's image features, beside as many training pictures (the floor); emoji-clip's CLIP
  score, R-precision of names (chance stated) and zero-shot category accuracy of the drawn and
  of the real held-out pictures.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from atelier.atomic import write_atomic
from atelier.budget import check_images, check_seed
from atelier.cli.errors import fail, writable_folder

REAL_SUITES = ("digits", "emoji")
SOURCES = {"digits": "mnist", "emoji": "emoji"}
DIGIT_JUDGE = "mnist-classifier"


def set_folder(suite: str, data: Path | None) -> Path:
    """The built real set the suite measures against: ``--data``, or the data cache's."""
    from atelier.data.builds import BuildError
    from atelier.data.npm import NpmError, PackageError
    from atelier.data.real import real_folder

    if data is not None:
        return data
    try:
        return real_folder(SOURCES[suite])
    except (NpmError, PackageError, BuildError) as err:
        which = SOURCES[suite]
        raise fail(f"cannot build the {which} pictures ({err}); build them with `atelier data "
                   f"{which} -o DIR` and pass --data DIR") from None  # fmt: skip


def evaluate_real_set(loaded: Any, options: Any, *, suite: str, samples: int, seed: int,
                      every: int, limit: int | None, output: Path, card: bool,
                      data: Path | None, judge: str | None, features: str | None,
                      clip_model: str | None, metrics: bool) -> None:  # fmt: skip
    """Draw the suite's prompts with ``loaded`` at ``options`` and write its JSON and HTML (and
    with ``card``, the model card's section of the suite)."""
    from atelier.eval.real_sets import draw

    if suite == "digits":
        from atelier.eval.digits import digit_prompts

        prompts = digit_prompts()
    else:
        from atelier.eval.emoji import emoji_prompts

        folder = set_folder(suite, data)
        try:
            prompts = emoji_prompts(folder)
        except (OSError, KeyError) as err:
            raise fail(f"--data: {folder} is not a folder `atelier data emoji` wrote ({err})"
                       ) from None  # fmt: skip
    prompts = prompts[::every][:limit]
    jobs = [(p, seed + k) for p in prompts for k in range(samples)]
    try:
        check_images(len(jobs))
        check_seed(seed)
    except ValueError as err:
        raise fail(str(err)) from None
    writable_folder(output)
    judged_by = None
    if suite == "digits":
        judged_by = _digit_judge(judge or DIGIT_JUDGE)
        folder = set_folder(suite, data)
    images, seconds = draw(loaded, [p.prompt for p, _ in jobs], [s for _, s in jobs],
                           options=options, desc=suite)  # fmt: skip
    report = {"model": loaded.name, "model_hash": loaded.model_hash, "suite": suite,
              "options": asdict(options), "samples": samples, "seed": seed, "every": every,
              "data": str(folder), "seconds_per_image": seconds}  # fmt: skip
    settings = {**asdict(options), "samples": samples, "seed": seed}
    if suite == "digits":
        from atelier.eval.digits import digits_report

        summary, page = digits_report(report, jobs, images, classifier=judged_by, folder=folder,
                                      settings=settings, metrics=metrics)  # fmt: skip
    else:
        from atelier.eval.emoji import emoji_report

        summary, page = emoji_report(report, jobs, images, folder=folder, settings=settings,
                                     features=features or "emoji-features",
                                     clip_model=clip_model or "emoji-clip",
                                     metrics=metrics)  # fmt: skip
    typer.echo(summary)
    typer.echo(f"{seconds:.2f} s per image; {len(images)} images")
    from atelier.kinds.base import options_label, options_summary

    subset = f"-every{every}" if every > 1 else ""
    path = output / f"{loaded.name}-{suite}-{options_label(options)}{subset}.json"
    write_atomic(path, json.dumps(report, indent=1))
    write_atomic(path.with_suffix(".html"), page)
    typer.echo(f"{path}\n{path.with_suffix('.html')}")
    if card and loaded.path is not None:
        from atelier.kinds.card import EVAL_HEADINGS, replace_section

        heading = EVAL_HEADINGS[SOURCES[suite]]
        section = (f"{heading}\n\n`atelier eval {loaded.name} --suite {suite}`: {samples} "
                   f"image(s) per prompt, seeds from {seed}; {options_summary(options)}; "
                   f"{seconds:.2f} s per image.\n\n```\n{summary}\n```\n")  # fmt: skip
        readme = loaded.path / "README.md"
        write_atomic(readme, replace_section(readme.read_text(), section, heading))


def _digit_judge(name: str):
    """The digit classifier that judges the digits suite, or exit 2 saying how to train it."""
    from atelier.kinds.digit_classifier import load_digit_classifier

    try:
        return load_digit_classifier(name)
    except (FileNotFoundError, ValueError) as err:
        raise fail(f"the digits suite is judged by the digit classifier {name}, which cannot be "
                   f"loaded ({err}); train it with `atelier train mnist-classifier` (about 5 "
                   "CPU-minutes), or name another with --judge") from None  # fmt: skip
