"""The editing commands end to end on the tiny model: outputs, metadata, errors."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.pipelines.metadata import read_params


def write(tmp_path, name, image):
    path = tmp_path / name
    image.save(path)
    return path


def scene():
    image = Image.new("RGB", (32, 32), (255, 255, 255))
    image.paste((255, 0, 0), (4, 4, 12, 12))
    return image


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_each_command_writes_pngs_with_its_mode(tiny_model_dir, tmp_path):
    src = write(tmp_path, "src.png", scene())
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (16, 0, 32, 32))
    mask_path = write(tmp_path, "mask.png", mask)
    common = ["--model", tiny_model_dir, "--steps", "3"]
    cases = [
        (["img2img", src, "a red circle", "--strength", "0.5", "-n", "2"], "img2img", 2),
        (["inpaint", src, mask_path, "a red circle and a blue square", "--feather", "2",
          "--jump", "1", "--resample", "2"], "inpaint", 1),
        (["outpaint", src, "a red circle and a blue square", "--right", "16"], "outpaint", 1),
        (["variations", src, "-n", "2"], "variations", 2),
    ]  # fmt: skip
    for args, mode, count in cases:
        out = tmp_path / mode
        result = run(*args, *common, "-o", out)
        assert result.exit_code == 0, result.output
        paths = sorted(out.glob("*.png"))
        assert len(paths) == count and all(str(p) in result.output for p in paths)
        params = read_params(paths[0])
        assert params.mode == mode and params.extra["source"] == "src.png"
        assert f"Mode: {mode}" in Image.open(paths[0]).text["parameters"]
    inpainted = np.asarray(Image.open(next((tmp_path / "inpaint").glob("*.png"))))
    np.testing.assert_array_equal(inpainted[:, :8], np.asarray(scene())[:, :8])
    assert Image.open(next((tmp_path / "outpaint").glob("*.png"))).size == (48, 32)
    replay = run("replay", next((tmp_path / "img2img").glob("*.png")))
    assert replay.exit_code == 2 and "needs its source image" in replay.output


def test_img2img_and_variations_default_to_the_deterministic_form_of_the_sampler(
    stochastic_model_dir, tmp_path
):
    # The model's default is dpmpp_2m_sde; edits that keep their source take dpmpp_2m (fresh
    # noise at every step would wash the source out), edits that draw new content keep it, and
    # an explicit --sampler always wins.
    src = write(tmp_path, "src.png", scene())
    cases = [
        (["img2img", src, "a red circle", "--strength", "0.5"], "dpmpp_2m"),
        (["variations", src, "-n", "1"], "dpmpp_2m"),
        (["img2img", src, "a red circle", "--sampler", "euler_ancestral"], "euler_ancestral"),
        (["outpaint", src, "a red circle", "--right", "16"], "dpmpp_2m_sde"),
    ]
    for k, (args, sampler) in enumerate(cases):
        out = tmp_path / f"case{k}"
        result = run(*args, "--model", stochastic_model_dir, "--steps", "2", "-o", out)
        assert result.exit_code == 0, result.output
        params = read_params(next(out.glob("*.png")))
        assert params.options["sampler"] == sampler, (args[0], params.options)


def test_bad_inputs_exit_2_with_the_fix(tiny_model_dir, tmp_path):
    src = write(tmp_path, "src.png", scene())
    small = write(tmp_path, "small.png", Image.new("L", (16, 16), 255))
    empty = write(tmp_path, "empty.png", Image.new("L", (32, 32), 0))
    odd = write(tmp_path, "odd.png", Image.new("RGB", (30, 30)))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"nope")
    m = ["--model", tiny_model_dir, "--steps", "2", "-o", tmp_path / "o"]
    cases = [
        (["inpaint", src, small, "x", *m], "the mask is 16x16 but the image is 32x32"),
        (["inpaint", src, empty, "x", *m], "mask is empty"),
        (["inpaint", src, tmp_path / "none.png", "x", *m], "no mask file"),
        (["img2img", odd, "x", *m], "resize it, e.g. to 32x32"),
        (["img2img", garbage, "x", *m], "cannot use"),
        (["img2img", src, "x", "--strength", "1.5", *m], "strength must be in"),
        (["inpaint", src, small, "x", "--method", "trained", *m], "needs an inpainting model"),
        (["outpaint", src, "x", *m], "at least one side"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


def test_reranked_edits_keep_a_candidate_that_reruns_from_its_own_seed(
    tiny_model_dir, clip_dir, tmp_path
):
    from atelier.pipelines.rerank import candidate_seeds

    src = write(tmp_path, "src.png", scene())
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (16, 0, 32, 32))
    mask_path = write(tmp_path, "mask.png", mask)
    common = ["--model", tiny_model_dir, "--steps", "3", "--seed", "4"]
    ranked = ["--candidates", "3", "--rerank", "clip", "--clip-model", clip_dir]
    cases = [
        ["img2img", src, "a red circle", "--strength", "0.5"],
        ["inpaint", src, mask_path, "a red circle and a blue square"],
        ["outpaint", src, "a red circle and a blue square", "--right", "16"],
    ]
    for args in cases:
        out = tmp_path / f"ranked-{args[0]}"
        result = run(*args, *common, *ranked, "-o", out)
        assert result.exit_code == 0, result.output
        (path,) = out.glob("*.png")
        params = read_params(path)
        assert params.seed in candidate_seeds(4, 3) and params.extra["requested_seed"] == 4
        assert params.extra["candidates"] == 3 and params.extra["rerank"] == "clip"
        assert 0 <= params.extra["clip_score"] <= 100
        # The kept candidate is exactly the edit its recorded seed makes on its own.
        alone = tmp_path / f"alone-{args[0]}"
        seed_args = [a for a in common if a not in ("--seed", "4")]
        result = run(*args, *seed_args, "--seed", params.seed, "-o", alone)
        assert result.exit_code == 0, result.output
        (again,) = alone.glob("*.png")
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(again)))
    bad = run("img2img", src, "a red circle", "--model", tiny_model_dir, "--candidates", "2")
    assert bad.exit_code == 2 and "--rerank clip" in bad.output


def test_an_image_of_another_size_than_the_models_gets_a_note_and_still_edits(
    tiny_model_dir, tmp_path
):
    # The tiny model is trained at 32 px: a 64 px source is edited, with a note naming both sizes
    # and the fix on stderr; a 32 px source gets no note.
    big = write(tmp_path, "big.png", scene().resize((64, 64)))
    small = write(tmp_path, "small.png", scene())
    mask = write(tmp_path, "mask.png", Image.new("L", (64, 64), 255))
    common = ["--model", tiny_model_dir, "--steps", "2"]
    for args in (["img2img", big, "a red circle"], ["inpaint", big, mask, "a red circle"]):
        result = run(*args, *common, "-o", tmp_path / args[0])
        assert result.exit_code == 0, result.output
        assert "trained on 32 x 32 px images and this one is 64 x 64" in result.stderr
        assert "Resize the image to 32 x 32 px" in result.stderr
        assert Image.open(next((tmp_path / args[0]).glob("*.png"))).size == (64, 64)
    result = run("img2img", small, "a red circle", *common, "-o", tmp_path / "small")
    assert result.exit_code == 0 and "note:" not in result.stderr


def test_edits_never_overwrite_and_check_their_folder_first(tiny_model_dir, tmp_path):
    src = write(tmp_path, "src.png", scene())
    common = ["--model", tiny_model_dir, "--steps", "2", "-o", tmp_path / "e"]
    first = run("img2img", src, "a red circle", "-n", "2", *common)
    assert first.exit_code == 0, first.output
    (tmp_path / "e" / "00000-img2img-0.png").unlink()
    again = run("variations", src, "-n", "1", *common)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip().endswith("00002-variations-0.png")
    assert sorted(p.name for p in (tmp_path / "e").glob("*.png")) == [
        "00001-img2img-1.png", "00002-variations-0.png",
    ]  # fmt: skip
    # An output folder under a file: one error line from every editing command, before any work.
    a_file = tmp_path / "some_file.txt"
    a_file.write_text("not a folder")
    bad = ["-o", a_file / "sub", "--model", tiny_model_dir]
    mask = write(tmp_path, "mask.png", Image.new("L", (32, 32), 255))
    for args in (["img2img", src, "x"], ["inpaint", src, mask, "x"], ["outpaint", src, "x"],
                 ["variations", src], ["upscale", src]):  # fmt: skip
        result = run(*args, *bad)
        errors = [x for x in result.output.splitlines() if x.startswith("error: ")]
        assert result.exit_code == 2 and len(errors) == 1, (args, result.output)
        assert f"is under {a_file}, which is a file; give -o a folder" in errors[0]
