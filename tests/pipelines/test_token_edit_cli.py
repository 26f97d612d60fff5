"""`atelier inpaint` and `atelier outpaint` with the token models end to end: PNGs recording the
mode and the kind's options, pixels outside the mask kept, CLIP reranking, and every flag or
size a token model cannot take refused with exit 2 and one clear line."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.pipelines.metadata import read_params


def scene(width: int = 16, height: int = 16) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((220, 30, 30), (2, 2, 9, 9))
    return image


def right_half(side: int = 16) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, (side // 2, 0, side, side))
    return mask


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def files(tmp_path):
    paths = {"src": tmp_path / "src.png", "mask": tmp_path / "mask.png",
             "narrow": tmp_path / "narrow.png", "big": tmp_path / "big.png",
             "big_mask": tmp_path / "big_mask.png", "empty": tmp_path / "empty.png"}  # fmt: skip
    scene().save(paths["src"])
    right_half().save(paths["mask"])
    scene(12, 16).save(paths["narrow"])
    scene(32, 32).save(paths["big"])
    right_half(32).save(paths["big_mask"])
    Image.new("L", (16, 16), 0).save(paths["empty"])
    return paths


@pytest.mark.parametrize(
    "kind, options, recorded",
    [
        ("maskgit", ["--steps", "4", "--option", "schedule=linear"],
         {"steps": 4, "schedule": "linear", "guidance": 2.0}),
        ("dalle", ["--option", "top_k=8", "-O", "temperature=0.9"],
         {"top_k": 8, "temperature": 0.9, "guidance": 2.0}),
    ],
)  # fmt: skip
def test_inpaint_and_outpaint_with_a_token_model(installed, files, tmp_path, kind,
                                                 options, recorded):  # fmt: skip
    model = ["--model", f"tiny-{kind}", "--guidance", "2", *options]
    out = tmp_path / "inpaint"
    result = run("inpaint", files["src"], files["mask"], "a red circle", *model, "-n", "2",
                 "--seed", "3", "--feather", "1", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    paths = sorted(out.glob("*.png"))
    assert len(paths) == 2 and all(str(p) in result.output for p in paths)
    params = read_params(paths[0])
    assert params.mode == "inpaint" and params.model == f"tiny-{kind}"
    assert {k: params.options[k] for k in recorded} == recorded
    assert params.extra == {"method": "masked", "grow": 0, "feather": 1.0, "source": "src.png",
                            "mask": "mask.png"}  # fmt: skip
    text = Image.open(paths[0]).text["parameters"]
    assert "Mode: inpaint" in text and "CFG scale: 2.0" in text
    for path in paths:  # left of the feathered edge (8 - ~3 px): the source's pixels exactly
        np.testing.assert_array_equal(np.asarray(Image.open(path))[:, :4],
                                      np.asarray(scene())[:, :4])  # fmt: skip
    out = tmp_path / "outpaint"
    result = run("outpaint", files["narrow"], "a red circle", "--right", "4", *model, "-o", out)
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.png")
    params = read_params(path)
    assert params.mode == "outpaint" and params.extra["right"] == 4 and (params.width == 16)
    assert {k: params.options[k] for k in recorded} == recorded
    np.testing.assert_array_equal(np.asarray(Image.open(path))[:, :12], np.asarray(scene(12)))


def test_reranked_token_edits_record_the_kept_candidate(installed, files, clip_dir,
                                                        tmp_path):  # fmt: skip
    ranked = ["--candidates", "3", "--rerank", "clip", "--clip-model", clip_dir, "--seed", "4"]
    for args in (["inpaint", files["src"], files["mask"], "a red circle"],
                 ["outpaint", files["narrow"], "a red circle", "--left", "4"]):  # fmt: skip
        out = tmp_path / args[0]
        result = run(*args, "--model", "tiny-dalle", *ranked, "-o", out)
        assert result.exit_code == 0, result.output
        params = read_params(next(out.glob("*.png")))
        assert params.extra["candidates"] == 3 and params.extra["requested_seed"] == 4
        assert params.extra["rerank"] == "clip" and params.seed % 1_000_003 == 4


def test_what_a_token_model_cannot_take_exits_2_with_the_fix(installed, files,
                                                             tmp_path):  # fmt: skip
    inpaint = ["inpaint", files["src"], files["mask"], "x"]
    cases = [
        ([*inpaint, "--model", "tiny-maskgit", "--sampler", "euler"],
         "tiny-maskgit takes no sampler option; its options: steps, temperature, guidance"),
        ([*inpaint, "--model", "tiny-dalle", "--steps", "4"], "tiny-dalle takes no steps option"),
        ([*inpaint, "--model", "tiny-dalle", "--option", "schedule=linear"],
         "tiny-dalle takes no schedule option"),
        ([*inpaint, "--model", "tiny-maskgit", "--method", "trained"],
         "tiny-maskgit is a masked token model, which inpaints by masking the tokens of the "
         "region: --method trained belongs to diffusion inpainting; leave it out"),
        ([*inpaint, "--model", "tiny-dalle", "--jump", "2", "--resample", "3"],
         "--jump, --resample belong to diffusion inpainting; leave them out"),
        (["inpaint", files["big"], files["big_mask"], "x", "--model", "tiny-maskgit"],
         "the image is 32x32 but this token model edits 16x16 px images only (its grid of "
         "tokens is fixed): resize it to 16x16"),
        (["inpaint", files["src"], files["empty"], "x", "--model", "tiny-dalle"],
         "the mask is empty"),
        (["outpaint", files["narrow"], "x", "--right", "8", "--model", "tiny-dalle"],
         "left + right must add up to 4 and top + bottom to 0"),
        (["outpaint", files["src"], "x", "--right", "4", "--model", "tiny-maskgit"],
         "already 16x16, the only size this token model makes"),
        (["outpaint", files["narrow"], "x", "--model", "tiny-maskgit"], "at least one side"),
        ([*inpaint, "--model", "tiny-tok"], "inpaint needs a diffusion or token model"),
    ]  # fmt: skip
    from atelier.kinds.tokenizer import save_tokenizer
    from tests.pipelines.token_models import tiny_tokenizer

    save_tokenizer(tiny_tokenizer(), installed / "tiny-tok", card="# tok\n")
    for args, message in cases:
        result = run(*args, "-o", tmp_path / "o")
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not list((tmp_path / "o").glob("*.png"))
