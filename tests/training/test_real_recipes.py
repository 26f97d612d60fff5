"""The real-set recipes end to end on tiny overrides and fake folders: the digits generator
(judged sample grids, a card `atelier eval` reads its suite from), the emoji autoencoder, CLIP
and feature network (held-out measurements on their cards), and a set built on first use."""

import json
import warnings

import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.images import ImageLoadWarning
from atelier.kinds.card import card_source
from atelier.kinds.digit_classifier import save_digit_classifier
from atelier.kinds.features import load_feature_net
from atelier.models.class_features import ClassFeatureNet
from atelier.models.digit_classifier import DigitClassifier, DigitClassifierConfig
from atelier.training.recipe_data import recipe_images
from atelier.training.recipes import get_recipe
from tests.data.fakes import built_emoji, built_mnist, fake_emoji, many_emoji_entries

QUICK = ["train.batch_size=8", "train.max_steps=2", "train.warmup_steps=0",
         "train.checkpoint_every=2", "train.log_every=1"]  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageLoadWarning)  # the fake emoji's corrupt PNG
        yield tmp_path / "home"


def train(*args: str) -> str:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_mnist_pixel_trains_two_steps_and_judges_its_sample_grid(home, tmp_path):
    torch.manual_seed(0)
    judge = DigitClassifier(DigitClassifierConfig(channels=(8, 8, 8), feature_dim=8))
    save_digit_classifier(judge, home / "models" / "mnist-classifier", card="# judge\n")
    data = built_mnist(tmp_path)
    tiny = ["unet.block_channels=[8,8,8]", "unet.groups=4", "unet.heads=1",
            "train.sample_every=2", "train.ema_start=0", "sampling.steps=2"]  # fmt: skip
    train("mnist-pixel", *QUICK, *tiny, "--data", str(data / "train"), "--out",
          str(tmp_path / "run"))  # fmt: skip
    record = json.loads((tmp_path / "run" / "samples" / "samples.jsonl").read_text())
    assert record["n"] == 40 and 0 <= record["digit_accuracy"] <= 1
    model = home / "models" / "mnist-pixel-local"  # mnist-pixel ships
    assert card_source(model) == "mnist"
    assert "## digits" in (model / "README.md").read_text()


def test_emoji_features_vae_and_clip_measure_the_held_out_pictures(home, tmp_path):
    data = str(built_emoji(tmp_path) / "train")
    train("emoji-features", *QUICK, "class_features.channels=[8,8,8]",
          "class_features.feature_dim=8", "--data", data)  # fmt: skip
    net = load_feature_net("emoji-features-local")  # emoji-features ships
    assert isinstance(net, ClassFeatureNet) and net.config.classes == (8, 3)  # names, categories
    card = (home / "models" / "emoji-features-local" / "README.md").read_text()
    assert "held-out pictures" in card and "training pictures (the floor)" in card
    assert card_source(home / "models" / "emoji-features-local") == "emoji"

    train("emoji-vae", *QUICK, "vae.block_channels=[8,8,8]", "vae.groups=4",
          "train.sample_every=null", "--data", data)  # fmt: skip
    card = (home / "models" / "emoji-vae-local" / "README.md").read_text()  # emoji-vae ships
    assert "| emoji-vae-local |" in card and "| shapes-vae (for comparison) |" in card

    # The frozen MiniLM swapped for a tiny trainable tower, to keep the test quick.
    tower = ["text_encoder.kind=transformer", "text_encoder.width=16", "text_encoder.layers=1",
             "text_encoder.heads=2", "clip.vision.width=16", "clip.vision.layers=1",
             "clip.vision.heads=2", "clip.embed_dim=8", "train.sample_every=2"]  # fmt: skip
    train("emoji-clip", *QUICK, *tower, "--data", data, "--out", str(tmp_path / "clip"))
    card = (home / "models" / "emoji-clip-local" / "README.md").read_text()  # emoji-clip ships
    assert "R-precision of the picture's name among 6 held-out names" in card
    assert "zero-shot category accuracy among 3 categories" in card
    probe = json.loads((tmp_path / "clip" / "samples" / "samples.jsonl").read_text())
    assert probe["n"] == 6  # the held-out pictures, classified by category


def test_a_real_set_is_built_into_the_cache_on_first_use(home, tmp_path):
    # The npm cache holds the package (as `atelier data emoji` would have fetched it).
    (home / "npm").mkdir(parents=True)
    package = fake_emoji(tmp_path, many_emoji_entries(3, 4))
    package.rename(home / "npm" / "emoji-datasource-google-16.0.0")
    images = recipe_images(get_recipe("emoji-ldm"), None)
    assert images.root == home / "data" / "real" / "emoji" / "train" and len(images) == 6
    assert (home / "data" / "real" / "emoji" / "heldout" / "metadata.jsonl").is_file()


def test_augmenting_is_refused_where_pictures_are_not_read(home):
    result = CliRunner().invoke(app, ["train", "emoji-ldm", "data.augment=true"])
    assert result.exit_code == 2 and "data.augment" in result.output


def test_emoji_vqgan_then_emoji_dalle_on_its_codes(home, tmp_path):
    data = str(built_emoji(tmp_path) / "train")
    train("emoji-vqgan", *QUICK, "data.resolution=32", "tokenizer.block_channels=[8,16,16]",
          "tokenizer.groups=8", "tokenizer.embed_dim=8", "tokenizer.codebook_size=32",
          "train.sample_every=null", "--data", data)  # fmt: skip
    card = (home / "models" / "emoji-vqgan-local" / "README.md").read_text()  # emoji-vqgan ships
    assert "| emoji-vqgan-local |" in card and "| shapes-vqgan (for comparison) |" in card
    assert "codebook usage" in card and "shapes-bench" not in card
    tiny = ["data.resolution=32", "token_transformer.width=16", "token_transformer.layers=1",
            "token_transformer.heads=2", "train.sample_every=2", "train.ema_start=0"]  # fmt: skip
    train("emoji-dalle", *QUICK, *tiny, "tokenizer_model=emoji-vqgan-local", "--data", data,
          "--out", str(tmp_path / "dalle"))  # fmt: skip
    record = json.loads((tmp_path / "dalle" / "samples" / "samples.jsonl").read_text())
    assert record == {"step": 2, "n": 17}  # the 11 training captions, the 6 held out; unjudged
    assert card_source(home / "models" / "emoji-dalle") == "emoji"
