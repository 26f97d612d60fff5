"""``atelier train`` end to end on tiny overrides: VAE, then latent diffusion on its latents,
resume, and the exported model generating by name; a run never replaces a shipped model unless
asked (--install); bad run folders and checkpoints are one-line errors. Run state goes to a
temporary ATELIER_HOME."""

import json
import shlex

import numpy as np
from typer.testing import CliRunner

from atelier.cli import app
from atelier.kinds.folder import SHIPPED, resolve
from atelier.kinds.registry import load_model

TINY = [
    "data.n=16",
    "train.batch_size=4",
    "train.checkpoint_every=1",
    "train.sample_every=null",
    "train.log_every=1",
]
TINY_VAE = ["vae.block_channels=[8,16,16]", "vae.groups=8"]
TINY_UNET = [
    "unet.block_channels=[16,32]",
    "unet.groups=8",
    "unet.attention_levels=[false,true]",
    "unet.context_dim=32",
    "text_encoder.width=32",
    "text_encoder.layers=1",
    "train.ema_start=0",
    "train.warmup_steps=0",
]


def run(*args):
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return result


def test_vae_then_ldm_then_resume_then_generate(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    # shapes-vae is a shipped model: the run installs beside it, saying how to use it.
    done = run("shapes-vae", *TINY, *TINY_VAE, "train.max_steps=2")
    assert "installed as shapes-vae-local, beside the shipped shapes-vae" in done.output
    assert "vae_model=shapes-vae-local" in done.output
    assert not (tmp_path / "models" / "shapes-vae").exists()
    assert resolve("shapes-vae") == SHIPPED / "shapes-vae"  # what the latent recipes train on
    vae_card = (tmp_path / "models" / "shapes-vae-local" / "README.md").read_text()
    assert vae_card.startswith("# shapes-vae-local\n")
    assert "Installed as shapes-vae-local beside the shipped shapes-vae" in vae_card
    assert "reconstruction PSNR" in vae_card and "latent scale factor" in vae_card
    # The latent recipe trains on that autoencoder when told to, and --install replaces the
    # shipped shapes-ldm for this user (which the card says).
    ldm = [*TINY, *TINY_UNET, "vae_model=shapes-vae-local"]
    done = run("shapes-ldm", *ldm, "train.max_steps=2", "--install")
    assert "shapes-ldm now replaces the shipped shapes-ldm" in done.output
    log = tmp_path / "runs" / "shapes-ldm" / "log.jsonl"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]
    run("shapes-ldm", *ldm, "train.max_steps=3", "--resume", "--install")
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3]
    cpu = json.loads((tmp_path / "runs" / "shapes-ldm" / "cpu_seconds.json").read_text())
    assert len(cpu) == 2 and all(s > 0 for s in cpu)
    model = load_model("shapes-ldm")
    assert model.config.latent_shape == (4, 16, 16)
    image = model.pipeline()(["a red circle"], seeds=[0])[0]
    assert np.asarray(image).shape == (64, 64, 3)
    card = (tmp_path / "models" / "shapes-ldm" / "README.md").read_text()
    assert "Training CPU time" in card
    assert "Replaces the shipped shapes-ldm in this user's models folder" in card
    # The card reproduces the model with the command as typed (not the test runner's argv),
    # less --resume: a run resumed in pieces reproduces as one.
    typed = shlex.join(["atelier", "train", "shapes-ldm", *ldm, "train.max_steps=3",
                        "--install"])  # fmt: skip
    assert f"- Reproduce: `{typed}`" in card
    # The placeholder sits under the heading `atelier eval --card` replaces.
    from atelier.kinds.card import SHAPES_BENCH_HEADING as CARD_HEADING
    from atelier.kinds.card import replace_section

    assert f"{CARD_HEADING}\n\nNot measured yet" in card
    scored = replace_section(card, f"{CARD_HEADING}\n\noverall 0.5\n")
    assert "Not measured yet" not in scored and scored.count(CARD_HEADING) == 1
    # The card adds the autoencoder's CPU time (from its own card) to the total.
    vae_hours = float(vae_card.split("Training CPU time: ")[1].split(" h")[0])
    ldm_hours = sum(cpu) / 3600
    assert f"in all: {ldm_hours + vae_hours:.2f} CPU-h" in card
    # ... and says so in its headline, which a fine-tune of it reads (below).
    ldm_total = f"{ldm_hours + vae_hours:.2f}"
    assert f"Training CPU time: {ldm_total} h in all" in card
    # Per-channel latent statistics were measured and stored (diffusers' latents_mean/std).
    assert model.config.latent_std is not None and len(model.config.latent_std) == 4

    # Stable Diffusion inpainting: fine-tune the base with mask and masked-latent inputs (the
    # recipe starts from the shipped default; here from the tiny model just trained).
    run("shapes-ldm-inpaint", *ldm, "train.max_steps=1", "unet.in_channels=9",
        "init_from=shapes-ldm", "text_encoder.kind=transformer")  # fmt: skip
    inpainter = load_model("shapes-ldm-inpaint-local")
    assert inpainter.unet.config.in_channels == 9
    # The fine-tune kept its base's one transformer layer (the default recipe's UNet has two).
    assert inpainter.unet.config.transformer_depth == model.unet.config.transformer_depth == 1
    inpaint_card = (inpainter.path / "README.md").read_text()
    assert f"{ldm_total} h for the model it fine-tunes, shapes-ldm)" in inpaint_card
    base_w = model.unet.conv_in.weight.detach()
    first = inpainter.unet.conv_in.weight.detach()
    # The base's latent and coordinate weights carry over (one step away); new channels start
    # at zero and have moved only by one step of Adam.
    assert (first[:, :4] - base_w[:, :4]).abs().max() < 0.01
    assert (first[:, 9:] - base_w[:, 4:]).abs().max() < 0.01
    assert first[:, 4:9].abs().max() < 0.01  # the mask and masked-latent channels start at 0
    assert inpainter.text_encoder.tokenizer.vocab_size == model.text_encoder.tokenizer.vocab_size
    from PIL import Image

    from atelier.pipelines.editing import Editor

    editor = Editor(inpainter.pipeline())
    canvas = Image.new("RGB", (64, 64), (255, 255, 255))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 32))
    from atelier.diffusion.options import SamplingOptions

    out = editor.inpaint([canvas], [mask], ["a red circle"], seeds=[0], method="trained",
                         options=SamplingOptions(steps=2))[0]  # fmt: skip
    assert np.asarray(out)[40:, 40:].min() == 255  # outside the mask: the white canvas
    # A composed prompt (AND) feeds every sub-prompt's row the image's mask and masked latents.
    composed = editor.inpaint([canvas], [mask], ["a red circle AND a blue square :0.5"], seeds=[0],
                              method="trained", options=SamplingOptions(steps=2))[0]  # fmt: skip
    assert np.asarray(composed)[40:, 40:].min() == 255
    assert not np.array_equal(np.asarray(composed), np.asarray(out))
    # Outpainting with an inpainting model paints through its own inputs (masked sampling would
    # refuse it) and keeps the original pixels.
    grown = editor.outpaint(canvas, "a red circle on the right", seed=0, right=32,
                            options=SamplingOptions(steps=2))  # fmt: skip
    assert grown.size == (96, 64) and np.asarray(grown)[:, :64].min() == 255


def _one_error(result, *parts):
    """Exit 2 with one ``error:`` line holding every part, and no traceback."""
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert all(part in errors[0] for part in parts), errors[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_folder_and_checkpoint_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    tiny = [*TINY, *TINY_VAE, "train.max_steps=1", "--out", str(tmp_path / "r")]
    run("shapes-vae", *tiny)
    # A fresh run into a folder holding a run's checkpoints: how to continue it or start anew.
    again = CliRunner().invoke(app, ["train", "shapes-vae", *tiny])
    _one_error(again, "already holds the checkpoints", "add --resume", "give --out another")
    # Its only checkpoint truncated (a disk filled up, a copy cut short): nothing to resume.
    (only,) = (tmp_path / "r" / "checkpoints").glob("step-*.safetensors")
    only.write_bytes(only.read_bytes()[:-64])
    resumed = CliRunner().invoke(app, ["train", "shapes-vae", *tiny, "--resume"])
    _one_error(resumed, "no readable checkpoint", only.name, "Delete", "give --out another")
    # A recipe value of the wrong type is refused before anything runs.
    typo = CliRunner().invoke(app, ["train", "shapes-vae", "train.max_steps=abc"])
    _one_error(typo, "train.max_steps takes an integer, not 'abc'")


def test_frozen_text_states_are_read_once_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    tiny_pixel = [
        "unet.block_channels=[16,32]",
        "unet.groups=8",
        "unet.attention_levels=[false,true]",
    ]
    run("shapes-pixel", *TINY, *tiny_pixel, "train.max_steps=1")
    (states,) = (tmp_path / "data").glob("text-*.safetensors")
    written = states.stat().st_mtime_ns
    from atelier.text.minilm import MiniLMTextEncoder

    def no_bert(self, prompts):
        raise AssertionError(f"MiniLM ran on {prompts}")

    monkeypatch.setattr(MiniLMTextEncoder, "encode_uncached", no_bert)
    run("shapes-pixel", *TINY, *tiny_pixel, "train.max_steps=2", "--resume")
    # The resumed process took every caption's states from the file: MiniLM never ran.
    assert list((tmp_path / "data").glob("text-*.safetensors")) == [states]
    assert states.stat().st_mtime_ns == written
    cpu = json.loads((tmp_path / "runs" / "shapes-pixel" / "cpu_seconds.json").read_text())
    assert len(cpu) == 2 and all(s > 0 for s in cpu)


def test_several_captions_per_scene_reach_training(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    from atelier.data.shapes import ShapesDataset
    from atelier.text.minilm import MiniLMTextEncoder

    seen: list[str] = []
    encode = MiniLMTextEncoder.encode

    def recording(self, prompts):
        seen.extend(prompts)
        return encode(self, prompts)

    monkeypatch.setattr(MiniLMTextEncoder, "encode", recording)
    tiny_pixel = [
        "unet.block_channels=[16,32]",
        "unet.groups=8",
        "unet.attention_levels=[false,true]",
    ]
    run("shapes-pixel", *TINY, *tiny_pixel, "train.max_steps=3", "data.captions_per_image=3")
    scenes = ShapesDataset(16, resolution=32)
    variants = {text for i in range(16) for text in scenes.caption_variants(i, 3)}
    first = {scenes.caption_variants(i, 1)[0] for i in range(16)}
    trained_on = {p for p in seen if p}
    # 12 samples drew from every scene's three captions, not only from its first.
    assert trained_on and trained_on <= variants and trained_on - first
    # A folder of images has one caption each: the override is refused with the fix.
    folder = tmp_path / "folder"
    folder.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (32, 32), (255, 255, 255)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a red circle")
    result = CliRunner().invoke(app, ["train", "shapes-pixel", "--data", str(folder), *TINY,
                                      *tiny_pixel, "train.max_steps=1", "data.captions_per_image=2",
                                      "name=folder-run"])  # fmt: skip
    assert result.exit_code != 0 and "drop the override" in result.output
