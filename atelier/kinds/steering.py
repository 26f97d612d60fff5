"""A diffusion model steered by a guide model folder, by name: what ``generate --clip-guidance``
and ``--classifier-guidance``, the HTTP API's same fields, replay and the benchmark share.

The guide's kind picks the method: a ``clip`` folder guides through the x_0 estimate (cutouts,
TV and range penalties), a ``clip-noised`` folder at x_t (GLIDE), a ``classifier-noised`` folder
by the prompt's layout (ADM). A PNG records the :class:`SteerSpec` (``to_record``), so replay
steers again exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from atelier.diffusion.clip_guidance import CLIPGuidanceOptions
from atelier.diffusion.cutouts import CutoutOptions
from atelier.kinds import diffusion
from atelier.kinds.noised_classifier import TrainedClassifier
from atelier.kinds.noised_clip import TrainedNoisedCLIP
from atelier.kinds.registry import KINDS, describe, load_model, with_article
from atelier.models.clip import CLIP
from atelier.pipelines.steering import (
    SteeredText2Image,
    check_space,
    classifier_steer,
    clip_steer,
    noised_clip_steer,
)

SteerMethod = Literal["clip", "classifier"]
MAX_SCALE = 10_000.0
MAX_CUTOUTS = 64
DEFAULT_GUIDES = {"clip": "shapes-clip", "classifier": "shapes-classifier-noised"}


@dataclass(frozen=True)
class SteerSpec:
    """How to steer: by which method and guide model, how hard, and CLIP guidance's knobs."""

    method: SteerMethod
    scale: float
    model: str
    cutouts: int = 8
    cut_power: float = 1.0
    tv_scale: float = 0.0
    range_scale: float = 50.0
    # Each step's cap on the RMS change of x_0, every method's (docs/steering.md: for the
    # noise-aware guides the lever that matters); recorded, so replay does not hang on a default.
    max_shift: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("clip", "classifier"):
            raise ValueError(f"unknown steering {self.method!r}; valid: clip, classifier")
        flag = f"{self.method}-guidance"
        for name in ("scale", "tv_scale", "range_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or not 0 <= value <= MAX_SCALE:  # fmt: skip
                what = flag if name == "scale" else name.replace("_", "-")
                raise ValueError(f"{what} must be a number in [0, {MAX_SCALE:g}], got {value!r}")
        if isinstance(self.cutouts, bool) or not isinstance(self.cutouts, int) \
                or not 1 <= self.cutouts <= MAX_CUTOUTS:  # fmt: skip
            raise ValueError(f"cutouts must be an integer in [1, {MAX_CUTOUTS}], "
                             f"got {self.cutouts!r}")  # fmt: skip
        shift = self.max_shift
        if isinstance(shift, bool) or not isinstance(shift, int | float) \
                or not math.isfinite(shift) or not 0 < shift <= MAX_SCALE:  # fmt: skip
            raise ValueError(f"max-shift must be a number in (0, {MAX_SCALE:g}], "
                             f"got {self.max_shift!r}")  # fmt: skip
        if not (isinstance(self.cut_power, int | float) and 0 < self.cut_power <= 10):
            raise ValueError(f"cut-power must be in (0, 10], got {self.cut_power!r}")

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> SteerSpec:
        """The spec a PNG recorded; a ValueError for anything else."""
        if not isinstance(record, dict) or set(record) - {f.name for f in fields(cls)}:
            raise ValueError(f"not a steering record: {record!r}")
        try:
            return cls(**record)
        except TypeError as err:
            raise ValueError(f"not a steering record ({err})") from None


def steered(model: Any, spec: SteerSpec, *, device: str = "cpu") -> SteeredText2Image:
    """``model`` (a loaded diffusion model) steered as ``spec`` says; a ValueError or
    FileNotFoundError names what does not fit (another kind, a guide of the wrong kind, a noised
    guide trained beside another model)."""
    flag = f"--{spec.method}-guidance"
    if not isinstance(model, diffusion.Model):
        raise ValueError(f"{flag} steers diffusion models; {model.name} is not one")
    listed = describe(spec.model)
    guide = load_model(listed.path, device=device)
    pipe = model.pipeline()
    if spec.method == "clip" and isinstance(guide, CLIP):
        options = CLIPGuidanceOptions(
            scale=spec.scale, tv_scale=spec.tv_scale, range_scale=spec.range_scale,
            cutouts=CutoutOptions(count=spec.cutouts, cut_power=spec.cut_power),
            max_shift=spec.max_shift,
        )  # fmt: skip
        steer = clip_steer(guide, options)
    elif spec.method == "clip" and isinstance(guide, TrainedNoisedCLIP):
        check_space(pipe, guide.space, guide.name)
        steer = noised_clip_steer(guide.model, guide.space, spec.scale, who=guide.name,
                                  max_shift=spec.max_shift)  # fmt: skip
    elif spec.method == "classifier" and isinstance(guide, TrainedClassifier):
        check_space(pipe, guide.space, guide.name)
        steer = classifier_steer(guide.classifier, guide.space, spec.scale, who=guide.name,
                                 max_shift=spec.max_shift)  # fmt: skip
    else:
        wanted = ("a CLIP or noised CLIP model (shapes-clip, shapes-clip-noised)"
                  if spec.method == "clip" else "a noise-aware classifier "
                  "(atelier train shapes-classifier-noised)")  # fmt: skip
        raise ValueError(f"{flag} needs {wanted}; {spec.model} is "
                         f"{with_article(KINDS[listed.kind].label)}")  # fmt: skip
    return SteeredText2Image(model, steer, spec.to_record())
