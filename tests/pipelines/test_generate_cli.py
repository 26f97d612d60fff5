"""``atelier generate`` / ``replay``: outputs, A1111 metadata, replay matches, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.pipelines.metadata import parse_a1111, read_params

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_generate_writes_pngs_with_a1111_and_json_metadata(tiny_model_dir, tmp_path):
    result = run(
        "generate",
        "a red circle",
        "-n",
        "2",
        "--seed",
        "9",
        "--model",
        tiny_model_dir,
        "-o",
        tmp_path,
        "--negative",
        "blue",
        "--steps",
        "3",
        "--sampler",
        "heun",
    )
    assert result.exit_code == 0, result.output
    paths = [line for line in result.stdout.splitlines() if line.endswith(".png")]
    assert len(paths) == 2
    with Image.open(paths[1]) as img:
        text = img.text["parameters"]
        assert img.size == (32, 32)
    fields = parse_a1111(text)
    assert fields["prompt"] == "a red circle" and fields["negative_prompt"] == "blue"
    assert fields["Steps"] == "3" and fields["Sampler"] == "Heun" and fields["Seed"] == "10"
    assert fields["CFG scale"] == "2.0" and fields["Size"] == "32x32" and fields["Model"] == "tiny"
    params = read_params(paths[1])
    assert (params.seed, params.options["sampler"], params.negative_prompt) == (10, "heun", "blue")
    assert fields["Model hash"] == params.model_hash


def test_replay_reproduces_pixels(tiny_installed, tiny_model_dir, tmp_path):
    result = run(
        "generate",
        "a blue square above a green triangle",
        "--seed",
        "3",
        "--model",
        tiny_model_dir,
        "-o",
        tmp_path,
        "--sampler",
        "dpmpp_2m_sde",
    )
    path = result.stdout.strip().splitlines()[-1]
    again = run("replay", path)
    assert again.exit_code == 0 and "pixels match" in again.output
    img = Image.open(path).convert("RGB")
    img.putpixel((0, 0), (0, 0, 0))
    from atelier.pipelines.metadata import save_png

    save_png(img, tmp_path / "edited.png", read_params(path))
    edited = run("replay", tmp_path / "edited.png")
    assert edited.exit_code == 1 and "pixels differ" in edited.output


def test_guidance_rescale_changes_pixels_is_recorded_and_replays(
    tiny_installed, tiny_model_dir, tmp_path
):
    common = ["a blue square above a green triangle", "--seed", "3", "--steps", "4",
              "--guidance", "6", "--model", tiny_model_dir]  # fmt: skip
    plain = run("generate", *common, "-o", tmp_path / "plain").stdout.strip().splitlines()[-1]
    result = run("generate", *common, "--guidance-rescale", "0.7", "-o", tmp_path / "rescaled")
    assert result.exit_code == 0, result.output
    rescaled = result.stdout.strip().splitlines()[-1]
    assert read_params(rescaled).options["guidance_rescale"] == 0.7
    assert "Guidance rescale" not in Image.open(plain).text["parameters"]  # as A1111: nothing
    assert parse_a1111(Image.open(rescaled).text["parameters"])["Guidance rescale"] == "0.7"
    a = np.asarray(Image.open(plain), dtype=np.int16)
    b = np.asarray(Image.open(rescaled), dtype=np.int16)
    assert np.abs(a - b).max() > 0
    again = run("replay", rescaled)
    assert again.exit_code == 0 and "pixels match" in again.output, again.output
    bad = run("generate", *common, "--guidance-rescale", "1.5")
    assert bad.exit_code == 2 and "guidance_rescale must be in [0, 1]" in bad.output


def test_prompts_files(tiny_model_dir, tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("a red circle\n\nthree yellow circles\n")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps({"prompt": p}) for p in ["a red circle", "x"]))
    for f, count in ((txt, 2), (jsonl, 2)):
        result = run("generate", "--prompts", f, "--model", tiny_model_dir, "-o", tmp_path / f.stem)
        assert result.exit_code == 0, result.output
        assert len([x for x in result.stdout.splitlines() if x.endswith(".png")]) == count
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    result = run("generate", "--prompts", bad, "--model", tiny_model_dir)
    assert result.exit_code == 2 and "line 1" in result.output


def test_errors_are_clear(tiny_model_dir, tmp_path):
    cases = [
        (("generate", "x", "--model", tmp_path / "missing"), "no model at"),
        (("generate", "x", "--model", tiny_model_dir, "--size", "20"), "multiple of 8"),
        (("generate", "x", "--model", tiny_model_dir, "--sampler", "lms"), "valid:"),
        (("generate", "--model", tiny_model_dir), "exactly one"),
        (("replay", tmp_path / "none.png"), "cannot read"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_other_size_and_truncation_warning(tiny_model_dir, tmp_path):
    long_prompt = " ".join(["a red circle and a blue square"] * 6)
    result = run("generate", long_prompt, "--model", tiny_model_dir, "--size", "48", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert "truncat" in result.output.lower()
    path = [x for x in result.stdout.splitlines() if x.endswith(".png")][0]
    assert Image.open(path).size == (48, 48)


def test_a_composed_prompt_is_recorded_as_typed_and_replays(
    tiny_installed, tiny_model_dir, tmp_path
):
    prompt = "a red circle AND a blue square :0.5"
    result = run("generate", prompt, "--seed", "4", "--steps", "3", "--model", tiny_model_dir,
                 "-o", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    path = result.stdout.strip().splitlines()[-1]
    assert parse_a1111(Image.open(path).text["parameters"])["prompt"] == prompt
    again = run("replay", path)
    assert again.exit_code == 0 and "pixels match" in again.output, again.output
    bad = run("generate", "a red circle AND", "--model", tiny_model_dir, "-o", tmp_path)
    assert bad.exit_code == 2 and "empty sub-prompt around AND" in bad.output


def test_pngs_name_the_model_by_name_and_hash_never_by_path(tiny_installed, tiny_model_dir,
                                                            tmp_path):  # fmt: skip
    result = run("generate", "a red circle", "--model", tiny_model_dir, "-o", tmp_path / "o")
    path = result.stdout.strip().splitlines()[-1]
    chunks = Image.open(path).text
    for text in chunks.values():
        assert str(tiny_model_dir) not in text and str(tiny_model_dir.parent) not in text
    assert json.loads(chunks["atelier"])["model"] == "tiny"
    # A PNG written before model kinds (options at the top level, the local path in extra)
    # still replays: the path is ignored and the model found by name and hash.
    record = json.loads(chunks["atelier"])
    options = record.pop("options")
    legacy = {**record, "steps": options["steps"], "guidance": options["guidance"],
              "sampler": options["sampler"],
              "extra": {"spacing": options["spacing"], "karras": options["karras"],
                        "model_path": "/somewhere/else/tiny"}}  # fmt: skip
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("atelier", json.dumps(legacy))
    Image.open(path).save(tmp_path / "legacy.png", pnginfo=info)
    again = run("replay", tmp_path / "legacy.png")
    assert again.exit_code == 0 and "pixels match" in again.output, again.output
    # Under another name, replay finds the model by its hash.
    moved = {**record, "options": options, "model": "renamed-elsewhere"}
    info = PngImagePlugin.PngInfo()
    info.add_text("atelier", json.dumps(moved))
    Image.open(path).save(tmp_path / "moved.png", pnginfo=info)
    again = run("replay", tmp_path / "moved.png")
    assert again.exit_code == 0 and "pixels match" in again.output, again.output
    unknown = {**moved, "model_hash": "0000000000"}
    info = PngImagePlugin.PngInfo()
    info.add_text("atelier", json.dumps(unknown))
    Image.open(path).save(tmp_path / "unknown.png", pnginfo=info)
    missing = run("replay", tmp_path / "unknown.png")
    assert missing.exit_code == 2 and "no model named 'renamed-elsewhere'" in missing.output
    assert "--model" in missing.output


def _written(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [Path(x).name for x in result.stdout.splitlines() if x.endswith(".png")]


def test_an_existing_image_is_never_overwritten(tiny_model_dir, tmp_path):
    # The tester's case: numbering by the count of PNGs made the next run, after one image was
    # deleted, overwrite the newest. Numbers now go on above the highest one in the folder.
    out, common = tmp_path / "ow", ["--model", tiny_model_dir, "--steps", "2"]
    assert _written(run("generate", "a red circle", "-n", "2", *common, "-o", out)) == [
        "00000-0.png", "00001-1.png",
    ]  # fmt: skip
    kept = (out / "00001-1.png").read_bytes()
    (out / "00000-0.png").unlink()
    again = run("generate", "a blue square", "--seed", "1", *common, "-o", out)
    assert _written(again) == ["00002-1.png"]
    assert (out / "00001-1.png").read_bytes() == kept
    assert read_params(out / "00002-1.png").prompt == "a blue square"


def test_a_name_taken_meanwhile_moves_on_to_the_next_number(tmp_path, monkeypatch):
    from atelier.pipelines import metadata

    image = Image.new("RGB", (8, 8))
    params = metadata.GenerationParams("x", 0, 8, 8, "m", "h")
    (tmp_path / "00003-0.png").write_bytes(b"another process's image")
    # As if another process wrote 00003-0.png between our scan and our write.
    monkeypatch.setattr(metadata, "next_number", lambda folder: 3)
    path = metadata.save_numbered_png(image, tmp_path, "0", params)
    assert path.name == "00004-0.png" and read_params(path).prompt == "x"
    assert (tmp_path / "00003-0.png").read_bytes() == b"another process's image"
    with pytest.raises(FileExistsError):
        metadata.save_png(image, path, params)
    metadata.save_png(Image.new("RGB", (4, 4)), path, params, replace=True)  # the demo's way
    assert Image.open(path).size == (4, 4)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def _one_error(result, message):
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "generating" not in result.output  # it stopped before sampling


def test_an_unusable_output_folder_is_one_error_before_sampling(tiny_model_dir, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    a_file = tmp_path / "some_file.txt"
    a_file.write_text("not a folder")
    common = ["generate", "a red circle", "--model", tiny_model_dir, "-o"]
    _one_error(run(*common, a_file), f"the output folder {a_file} is a file; give -o a folder")
    _one_error(run(*common, a_file / "sub"), f"is under {a_file}, which is a file")
    # A folder this user cannot write into (root writes anywhere, so the probe is refused).
    import atelier.cli.errors as errors

    def refused(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(errors.tempfile, "mkstemp", refused)
    locked = tmp_path / "locked"
    message = f"cannot write into the output folder {locked} (Permission denied); give -o a"
    _one_error(run(*common, locked), message)
