"""Editing benchmark: inpainting, outpainting, img2img, super-resolution and the cascade.

    .venv/bin/python bench/editing.py [--n 100] [--model shapes-ldm-minilm] [--quick]
        [--only inpaint,outpaint,img2img,sr,cascade] [--sampler NAME] [--steps K] [--guidance W]
        [--candidates N [--clip-model shapes-clip[,shapes-clip-bind]]]

Every case starts from a fresh render of the shapes world (seeds no training set uses), at the
model's own resolution, and is scored by the project's judge, so each figure is a success rate
with a 95% interval:

1. Inpainting: mask one empty cell of a rendered scene and ask for the scene's caption plus one
   new object there; success = the whole image passes the judge for the new spec. Also the mean
   absolute change of pixels outside the feathered mask (in 1/255). Both methods: masked
   sampling with the text-to-image model, and the trained inpainting model if installed.
2. Outpainting: a scene whose objects sit in the left two columns, extended by half its width
   (32 px at 64) to the right, asked for one more object "on the right"; success = that object
   is found in the new strip. And the original area's mean absolute change. Both methods, as for
   inpainting.
3. img2img: strength 0.3 under the source caption (the judge should still pass it), strength
   0.8 under a new caption with other colours (the judge should pass the new caption). Without
   --sampler it takes the model's sampler made deterministic, as `atelier img2img` does.
4. Super-resolution: PSNR and SSIM of each installed upscaler against the true render, beside
   bicubic; and judge accuracy of the 32 -> 64 cascade (shapes-pixel + shapes-sr-32-64) beside
   the native 64 px model.

With ``--candidates N`` every inpainting, outpainting and img2img case draws N edits and CLIP
keeps the one that fits its prompt best (reranking, as ``atelier inpaint --candidates N
--rerank clip`` does); the judge then scores only the kept one. ``--clip-model A,B`` lets each
CLIP pick from the same candidates, printed beside the first candidate (no reranking) and "some
candidate" (any of the N passes: the ceiling of a perfect reranker), so the rows are paired.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.eval.shapes_bench import bootstrap  # noqa: E402
from atelier.kinds.default import DEFAULT_MODEL  # noqa: E402
from atelier.kinds.registry import load_model  # noqa: E402
from atelier.pipelines.editing import Editor, source_keeping  # noqa: E402
from atelier.pipelines.masks import prepare_mask  # noqa: E402
from atelier.pipelines.rerank import candidate_seeds  # noqa: E402
from atelier.shapes.caption import phrase  # noqa: E402
from atelier.shapes.judge import detect, judge  # noqa: E402
from atelier.shapes.render import render  # noqa: E402
from atelier.shapes.scene import sample_scene  # noqa: E402
from atelier.shapes.world import (  # noqa: E402
    COLORS,
    SEEN_PAIRS,
    ObjectSpec,
    SceneSpec,
)

SEED = 31_337


@dataclass(frozen=True)
class Choices:
    """A case's candidate edits (the first is plain editing's image) and each CLIP's pick."""

    images: list
    picks: dict[str, int]


class Picker:
    """One edit per case, or ``candidates`` edits and each CLIP's pick of them (reranking).

    Every chooser sees the same candidates, so their rows are paired: "first candidate" is the
    edit without reranking (candidate 0 is plain editing's image) and "some candidate" is the
    ceiling a perfect reranker would reach."""

    def __init__(self, clips: dict, candidates: int) -> None:
        self.clips, self.candidates = clips, candidates

    @property
    def choosers(self) -> list[str]:
        if not self.clips:
            return [""]
        return ["first candidate", *(f"best by {n}" for n in self.clips), "some candidate"]

    def _choose(self, draw, prompt: str, seed: int) -> Choices:
        """``draw(seeds)`` makes one edit per seed; the candidates and each CLIP's pick."""
        images = draw(candidate_seeds(seed, self.candidates))
        picks = {f"best by {name}": int(clip(images, [prompt] * len(images)).argmax())
                 for name, clip in self.clips.items()}  # fmt: skip
        return Choices(images, picks)

    def inpaint(self, editor: Editor, image, mask, prompt: str, seed: int, **kw) -> Choices:
        def draw(seeds):
            n = len(seeds)
            return editor.inpaint([image] * n, [mask] * n, [prompt] * n, seeds=seeds, **kw)

        return self._choose(draw, prompt, seed)

    def outpaint(self, editor: Editor, image, prompt: str, seed: int, **kw) -> Choices:
        def draw(seeds):
            return [editor.outpaint(image, prompt, seed=x, **kw) for x in seeds]

        return self._choose(draw, prompt, seed)

    def img2img(self, editor: Editor, image, prompt: str, seed: int, **kw) -> Choices:
        def draw(seeds):
            n = len(seeds)
            return editor.img2img([image] * n, [prompt] * n, seeds=seeds, **kw)

        return self._choose(draw, prompt, seed)


def passes_of(choices: Choices, passed) -> dict[str, bool]:
    """Each chooser's verdict, judging every candidate once: the first candidate's, each CLIP's
    pick's, and "some candidate" (any passes); without CLIPs, the one edit's."""
    verdicts = [passed(image) for image in choices.images]
    if not choices.picks:
        return {"": verdicts[0]}
    return {"first candidate": verdicts[0], **{c: verdicts[k] for c, k in choices.picks.items()},
            "some candidate": any(verdicts)}  # fmt: skip


def fits(spec: SceneSpec):
    """Whether an image passes the judge for ``spec``."""
    return lambda image: judge(np.asarray(image), spec).passed


def paired_gains(passes: dict[str, list[bool]], label: str = "") -> None:
    """With CLIPs choosing, each one's gain over the first candidate and over the first CLIP,
    case by case on the same candidates, with a 95% bootstrap interval over cases."""
    picks = [c for c in passes if c.startswith("best by ")]
    if not picks or not passes[picks[0]]:
        return
    pairs = [("first candidate", c) for c in picks] + [(picks[0], c) for c in picks[1:]]
    for before, after in pairs:
        gain = bootstrap([[float(b) - float(a)] for a, b in zip(passes[before], passes[after])])
        print(f"{label}{after} minus {before}: {gain.accuracy:+.3f} [{gain.low:+.3f}, "
              f"{gain.high:+.3f}]")  # fmt: skip


def row_name(method: str, chooser: str) -> str:
    return f"{method}, {chooser}" if chooser else method


def rate(passes: list[bool]) -> str:
    if not passes:
        return "- (n=0)"
    a = bootstrap([[p] for p in passes])
    return f"{a.accuracy:.3f} [{a.low:.3f}, {a.high:.3f}] (n={len(passes)})"


def cell_box(cell: tuple[int, int], size: int, margin: int = 1) -> tuple[int, int, int, int]:
    r, c = cell
    third = size // 3
    x0, y0 = c * third, r * third
    x1 = size if c == 2 else (c + 1) * third
    y1 = size if r == 2 else (r + 1) * third
    return max(0, x0 - margin), max(0, y0 - margin), min(size, x1 + margin), min(size, y1 + margin)


def inpainting_cases(n: int, rng: np.random.Generator, size: int):
    """(image, mask, prompt, new spec) with one new object in an empty cell."""
    cases = []
    while len(cases) < n:
        scene = sample_scene(rng, split="train")
        spec = scene.spec()
        if len(spec.objects) > 2:
            continue
        used = {o.cell for o in spec.objects}
        empty = [(r, c) for r in range(3) for c in range(3) if (r, c) not in used]
        cell = empty[int(rng.integers(len(empty)))]
        color, shape = SEEN_PAIRS[int(rng.integers(len(SEEN_PAIRS)))]
        new = SceneSpec((*spec.objects, ObjectSpec(color, shape, None, cell)))
        image = Image.fromarray(render(scene, size))
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, cell_box(cell, size))
        cases.append((image, mask, phrase(new, rng, plain=True), new))
    return cases


def bench_inpainting(
    editors: dict[str, tuple[Editor, str]], n: int, options, pick, size: int
) -> None:
    cases = inpainting_cases(n, np.random.default_rng(SEED), size)
    print("\n## Inpainting: scene caption + one new object in an empty cell")
    print("| method | success | outside-mask change (1/255) | s/image |")
    print("|---|---|---|---|")
    for name, (editor, method) in editors.items():
        passes = {c: [] for c in pick.choosers}
        changes = []
        began = time.perf_counter()
        for k, (image, mask, prompt, spec) in enumerate(cases):
            chosen = pick.inpaint(editor, image, mask, prompt, k, method=method, feather=1.5,
                                  options=options)  # fmt: skip
            for c, ok in passes_of(chosen, fits(spec)).items():
                passes[c].append(ok)
            soft = prepare_mask(mask, image, feather=1.5)
            out = chosen.images[0]
            delta = np.abs(np.asarray(out, float) - np.asarray(image, float)).mean(-1)
            changes.append(float(delta[soft == 0].mean()))
        sec = (time.perf_counter() - began) / len(cases)
        for c, p in passes.items():
            print(f"| {row_name(name, c)} | {rate(p)} | {np.mean(changes):.3f} | {sec:.2f} |")
        if pick.clips:
            paired_gains(passes, f"{name}: ")


def bench_outpainting(editors: dict[str, Editor], n: int, options, pick, size: int) -> None:
    print(f"\n## Outpainting: {size // 2} px to the right, one object asked for there")
    print("| method | object found in the new strip | original area change (1/255) |")
    print("|---|---|---|")
    for name, editor in editors.items():
        rng = np.random.default_rng(SEED + 1)
        passes, changes = {c: [] for c in pick.choosers}, []
        while len(changes) < n:
            scene = sample_scene(rng, split="train")
            if any(o.cell[1] == 2 for o in scene.spec().objects) or len(scene.objects) > 2:
                continue
            color, shape = SEEN_PAIRS[int(rng.integers(len(SEEN_PAIRS)))]
            prompt = phrase(scene.spec(with_cells=False), rng, plain=True)
            prompt += f" and a {color} {shape} on the right"
            image = Image.fromarray(render(scene, size))
            chosen = pick.outpaint(editor, image, prompt, len(changes), right=size // 2,
                                   feather=1.5, options=options)  # fmt: skip

            def found(im, color=color, shape=shape) -> bool:
                return any((o.color, o.shape) == (color, shape) and o.cx * im.width > size
                           for o in detect(np.asarray(im)))  # fmt: skip

            for c, ok in passes_of(chosen, found).items():
                passes[c].append(ok)
            out = chosen.images[0]
            delta = np.abs(
                np.asarray(out, float)[:, : size - 4] - np.asarray(image, float)[:, : size - 4]
            )
            changes.append(float(delta.mean()))
        for c, p in passes.items():
            print(f"| {row_name(name, c)} | {rate(p)} | {np.mean(changes):.3f} |")
        if pick.clips:
            paired_gains(passes, f"{name}: ")


def bench_img2img(editor: Editor, n: int, options, pick, size: int) -> None:
    rng = np.random.default_rng(SEED + 2)
    keep, change = {c: [] for c in pick.choosers}, {c: [] for c in pick.choosers}
    for k in range(n):
        scene = sample_scene(rng, split="train")
        spec = scene.spec()
        image = Image.fromarray(render(scene, size))
        caption = phrase(spec, rng, plain=True)
        chosen = pick.img2img(editor, image, caption, k, strength=0.3, options=options)
        for c, ok in passes_of(chosen, fits(spec)).items():
            keep[c].append(ok)
        recolored = SceneSpec(tuple(
            ObjectSpec(COLORS[(COLORS.index(o.color) + 1 + int(rng.integers(5))) % 6], o.shape,
                       o.size, o.cell) for o in spec.objects), spec.relations)  # fmt: skip
        if recolored.held_out:
            continue
        new = phrase(recolored, rng, plain=True)
        chosen = pick.img2img(editor, image, new, k, strength=0.8, options=options)
        for c, ok in passes_of(chosen, fits(recolored)).items():
            change[c].append(ok)
    print("\n## img2img")
    for c in pick.choosers:
        print(f"strength 0.3, source caption still passes{', ' + c if c else ''}: {rate(keep[c])}")
    for c in pick.choosers:
        print(f"strength 0.8, new caption (other colours) passes{', ' + c if c else ''}: "
              f"{rate(change[c])}")  # fmt: skip
    if pick.clips:
        paired_gains(keep, "strength 0.3: ")
        paired_gains(change, "strength 0.8: ")


def bench_super_resolution(n: int) -> None:
    from atelier.eval.super_resolution import upscaler_scores
    from atelier.kinds.upscaler import load_upscaler

    print("\n## Super-resolution (PSNR dB / SSIM against the true render)")
    for low, high in ((32, 64), (64, 128)):
        try:
            upscaler = load_upscaler(f"shapes-sr-{low}-{high}")
        except FileNotFoundError:
            print(f"{low}->{high}: no model (atelier train shapes-sr-{low}-{high})")
            continue
        for name, (p, s) in upscaler_scores(upscaler, n=n).items():
            print(f"{low}->{high} {name}: {p:.2f} / {s:.4f}")


def bench_cascade(native_name: str, native, n: int) -> None:
    """Imagen's question: does generating small and upscaling keep the content? The same seen
    shapes-bench prompts and seeds through shapes-pixel (32 px) + shapes-sr-32-64, beside the
    32 px base alone and the native 64 px model, all judged by the same judge."""
    from atelier.kinds.upscaler import cascade_stages
    from atelier.pipelines.upscale import run_cascade
    from atelier.shapes.bench import load_suite

    print("\n## Cascade 32 -> 64 against native 64 px (seen shapes-bench prompts)")
    try:
        base, stages = load_model("shapes-pixel"), cascade_stages([32, 64])
    except FileNotFoundError as err:
        print(f"skipped: {err}")
        return
    suite = [bp for bp in load_suite() if bp.split == "seen"]
    suite = [suite[i] for i in np.random.default_rng(SEED + 3).permutation(len(suite))[:n]]
    rows = {"native 64 px (" + native_name + ")": [], "base 32 px (shapes-pixel)": [],
            "cascade 32 -> 64": []}  # fmt: skip
    timing = dict.fromkeys(rows, 0.0)
    for start in range(0, len(suite), 8):
        chunk = suite[start : start + 8]
        prompts, seeds = [bp.prompt for bp in chunk], list(range(start, start + len(chunk)))
        began = time.perf_counter()
        hi = native.pipeline()(prompts, seeds=seeds, options=native.config.defaults)
        t1 = time.perf_counter()
        lo = base.pipeline()(prompts, seeds=seeds, options=base.config.defaults)
        t2 = time.perf_counter()
        up = run_cascade(lo, seeds, stages)
        t3 = time.perf_counter()
        names = list(rows)
        timing[names[0]] += t1 - began
        timing[names[1]] += t2 - t1
        timing[names[2]] += t3 - t1
        for bp, a, b, c in zip(chunk, hi, lo, up):
            for name, image in zip(names, (a, b, c)):
                rows[name].append(judge(np.asarray(image), bp.spec).passed)
    print("| pipeline | judge accuracy | s/image |")
    print("|---|---|---|")
    for name, passes in rows.items():
        print(f"| {name} | {rate(passes)} | {timing[name] / len(suite):.2f} |")
    gap = np.mean(rows["cascade 32 -> 64"]) - np.mean(rows[names[0]])
    print(f"cascade minus native: {gap:+.3f}")


SECTIONS = ("inpaint", "outpaint", "img2img", "sr", "cascade")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--quick", action="store_true", help="n = 12, for a smoke run")
    parser.add_argument("--sampler", help="sampler for the edits (default: the model's)")
    parser.add_argument("--steps", type=int, help="steps for the edits (default: the model's)")
    parser.add_argument("--guidance", type=float, help="CFG scale (default: the model's)")
    parser.add_argument(
        "--inpainter",
        default="shapes-ldm-inpaint",
        help="the trained inpainting model for method 'trained' (default: shapes-ldm-inpaint)",
    )
    parser.add_argument(
        "--methods",
        default="masked,trained",
        help="inpainting/outpainting methods to run, of: masked,trained",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=1,
        help="edits per case; CLIP keeps the best (default 1: no reranking)",
    )
    parser.add_argument("--clip-model", default="shapes-clip",
                        help="CLIP(s) for --candidates, comma-separated: each picks from the "
                             "same candidates, beside the first and the best possible")  # fmt: skip
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of: {','.join(SECTIONS)}",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    methods = set(args.methods.split(","))
    if unknown := methods - {"masked", "trained"}:
        parser.error(f"unknown method(s) {sorted(unknown)}; choose from masked,trained")
    n = 12 if args.quick else args.n
    loaded = load_model(args.model)
    size = loaded.config.resolution  # scenes are rendered at the model's own resolution
    options = loaded.config.defaults
    options = options.overridden(sampler=args.sampler, steps=args.steps, guidance=args.guidance)
    # img2img keeps its source: the model's sampler made deterministic, as `atelier img2img` does.
    edit_options = options if args.sampler else source_keeping(options)
    editor = Editor(loaded.pipeline())
    if args.candidates < 1:
        parser.error("--candidates must be at least 1")
    clips = {}
    if args.candidates > 1:
        from atelier.eval.clip_metrics import clip_scorer
        from atelier.kinds.clip import load_clip

        clips = {name: clip_scorer(load_clip(name)) for name in args.clip_model.split(",")}
    pick = Picker(clips, args.candidates)
    ranked = f", best of {args.candidates} by {args.clip_model}" if clips else ""
    print(
        f"# Editing benchmark: {args.model}, {options.sampler} {options.steps} steps "
        f"(img2img: {edit_options.sampler}), CFG {options.guidance}, {size} px, n = {n} per case"
        f"{ranked}"
    )
    inpainter = None
    if only & {"inpaint", "outpaint"} and "trained" in methods:
        try:
            trained_model = load_model(args.inpainter)
        except FileNotFoundError:
            print(f"note: no {args.inpainter} model; the trained method is skipped")
        else:
            if trained_model.config.resolution == size:
                inpainter = Editor(trained_model.pipeline())
            else:
                print(f"note: {args.inpainter} works at {trained_model.config.resolution} px, "
                      f"these scenes are {size} px; the trained method is skipped")  # fmt: skip
    masked = {f"masked ({args.model})": editor} if "masked" in methods else {}
    trained = {f"trained ({args.inpainter})": inpainter} if inpainter is not None else {}
    if "inpaint" in only:
        editors = {name: (e, "masked") for name, e in masked.items()}
        editors |= {name: (e, "trained") for name, e in trained.items()}
        bench_inpainting(editors, n, options, pick, size)
    if "outpaint" in only:
        bench_outpainting(masked | trained, n, options, pick, size)
    if "img2img" in only:
        bench_img2img(editor, n, edit_options, pick, size)
    if "sr" in only:
        bench_super_resolution(min(n, 64))
    if "cascade" in only:
        bench_cascade(args.model, loaded, n)


if __name__ == "__main__":
    main()
