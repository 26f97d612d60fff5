"""Issue 22's reproductions on the command line: every oversized or malformed input from a user
or a shared file ends in one `error:` line, exit code 2, before any large allocation."""

import json
import shutil

import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.folder import SHIPPED

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_sizes_steps_seeds_and_counts_past_the_budget_are_refused_before_loading(
    tiny_model_dir, monkeypatch
):
    from atelier.kinds import diffusion

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before its options were checked")

    monkeypatch.setattr(diffusion, "load_diffusion", never)
    common = ["generate", "a red circle", "--model", tiny_model_dir]
    one_error_line(run(*common, "--size", 4096), "16,777,216 pixels", "--max-pixels")
    one_error_line(run(*common, "--steps", 1001), "1,001 steps", "--max-steps")
    one_error_line(run(*common, "--seed", 10**20), "a seed is a whole number from 0 to 2^64 - 1")
    one_error_line(run(*common, "-n", 20000), "20,000 images", "--max-images")
    one_error_line(run(*common, "--option", "steps=abc"), "option steps takes an integer")
    long_prompt = " ".join(["a red circle"] * 5000)
    one_error_line(run("generate", long_prompt, "--model", tiny_model_dir), "--max-prompt-chars")
    one_error_line(run("--max-pixels", 100, *common), "over the limit of 100 pixels")
    one_error_line(run("generate", "x", "--model", "shapes-clip"), "does not draw from text")


def test_the_root_options_raise_a_limit(tiny_model_dir, tmp_path):
    result = run("--max-steps", 2000, "generate", "x", "--model", tiny_model_dir, "--steps",
                 1001, "-n", 0)  # fmt: skip
    assert "1,001 steps" not in result.output  # it went on to the next check (-n 0)
    one_error_line(result, "-n and --batch must be at least 1")


def test_a_random_seed_is_drawn_recorded_and_replays(tiny_installed, tmp_path):
    result = run("generate", "a red circle", "--seed", -1, "--model", tiny_installed, "-o",
                 tmp_path / "o", "--steps", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "o").glob("*.png")
    seed = json.loads(Image.open(path).text["atelier"])["seed"]
    assert 0 <= seed < 2**32 and path.name.endswith(f"-{seed}.png")
    assert "pixels match" in run("replay", path).output


def tampered(source, tmp_path, name, change=None, drop=None):
    image = Image.open(source)
    record = {**json.loads(image.text["atelier"]), **(change or {})}
    if drop:
        record.pop(drop)
    info = PngImagePlugin.PngInfo()
    info.add_text("atelier", json.dumps(record))
    image.save(tmp_path / name, pnginfo=info)
    return tmp_path / name


def test_a_tampered_png_is_refused_in_one_line(tiny_installed, tmp_path):
    result = run("generate", "a red circle", "--model", tiny_installed, "-o", tmp_path / "o",
                 "--steps", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    (source,) = (tmp_path / "o").glob("*.png")
    options = json.loads(Image.open(source).text["atelier"])["options"]
    for change, drop, needle in (
        ({"width": 100000, "height": 100000}, None, "10,000,000,000 pixels"),
        ({"options": {**options, "steps": 10**9}}, None, "1,000,000,000 steps"),
        ({"options": {**options, "guidance": "abc"}}, None, "option guidance takes a finite"),
        ({"seed": 2**80}, None, "a seed is a whole number"),
        ({}, "prompt", "generation parameters lack prompt"),
        ({"width": "64"}, None, "width is '64', not an integer"),
        ({"options": [1, 2]}, None, "options is [1, 2], not a JSON object"),
        ({"extra": {"cascade": "32,64"}}, None, "cascade sizes"),
        ({"options": {**options, "temperature": 1}}, None, "tiny takes no temperature option"),
    ):
        path = tampered(source, tmp_path, "t.png", change, drop)
        one_error_line(run("replay", path), needle)
    (tmp_path / "not.png").write_text("{}")
    one_error_line(run("replay", tmp_path / "not.png"), "cannot read")


def test_huge_and_hostile_images_are_refused(tiny_model_dir, tmp_path):
    Image.new("RGB", (4000, 4000), "red").save(tmp_path / "big.png")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "x.png")
    one_error_line(run("img2img", tmp_path / "big.png", "a red circle", "--model",
                       tiny_model_dir), "4000x4000", "--max-pixels")  # fmt: skip
    Image.new("L", (2000, 2000)).save(tmp_path / "bigmask.png")
    one_error_line(run("inpaint", tmp_path / "x.png", tmp_path / "bigmask.png", "x", "--model",
                       tiny_model_dir), "the mask")  # fmt: skip
    # A decompression bomb: a small file whose header claims 400 megapixels.
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    one_error_line(run("inpaint", tmp_path / "x.png", tmp_path / "bomb.png", "x", "--model",
                       tiny_model_dir), "cannot use")  # fmt: skip
    (tmp_path / "x.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n")
    one_error_line(run("inpaint", tmp_path / "x.png", tmp_path / "x.eps", "x", "--model",
                       tiny_model_dir), "cannot use")  # fmt: skip
    one_error_line(run("outpaint", tmp_path / "x.png", "x", "--right", 5000, "--bottom", 5000,
                       "-o", tmp_path / "o", "--model",
                       tiny_model_dir), "outpainted canvas")  # fmt: skip
    assert "In (0, 1]" in run("img2img", "--help").output  # 0 itself is refused


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"block_channels": [2048, 2048, 2048]}, "--max-parameters"),
        ({"layers_per_block": 1_000_000}, "layers_per_block = 1000000 is over the limit of 64"),
        ({"layers_per_block": 3}, "does not match config.json (missing"),
        ({"block_channels": [8] * 40}, "block_channels has 40 entries"),
    ],
)
def test_a_hostile_model_folder_is_refused_before_it_allocates(tmp_path, change, needle):
    folder = tmp_path / "m"
    shutil.copytree(SHIPPED / "shapes-ldm-minilm", folder)
    config = json.loads((folder / "config.json").read_text())
    config["unet"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    one_error_line(run("generate", "x", "--model", folder, "-o", tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
