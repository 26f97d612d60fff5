"""A tiny, randomly initialised latent text-to-image model folder for pipeline and CLI tests."""

import pytest
import torch

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.kinds.clip import save_clip
from atelier.kinds.diffusion import Model, ModelConfig, save_model
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.models.unet import UNet, UNetConfig
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.shapes.bench import load_suite
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from tests.pipelines.token_models import install_token_models

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles"] * 4


def tiny_model(seed: int = 0, sampler: str = "euler") -> Model:
    torch.manual_seed(seed)
    text_config = TextEncoderConfig(kind="transformer", max_length=12, width=16, layers=1, heads=2)
    text_encoder = build_text_encoder(text_config, tokenizer=train_bpe(CAPTIONS, vocab_size=300))
    config = ModelConfig(
        name="tiny",
        kind="latent",
        resolution=32,
        unet=UNetConfig(
            block_channels=(16, 32),
            layers_per_block=1,
            groups=8,
            heads=2,
            context_dim=16,
            attention_levels=(False, True),
        ),
        text_encoder=text_config,
        diffusion=DiffusionConfig(),
        vae=VAEConfig(block_channels=(8, 16, 16), groups=8, mid_attention=False),
        latent_scale=0.5,
        latent_mean=(0.1, -0.2, 0.3, 0.0),
        latent_std=(1.0, 2.0, 0.5, 1.5),
        defaults=SamplingOptions(steps=4, guidance=2.0, sampler=sampler),
    )
    return Model(
        config, UNet(config.unet).eval(), text_encoder.eval(), AutoencoderKL(config.vae).eval()
    )


def install_by_name(folder, home, monkeypatch) -> None:
    """Make ``folder`` findable by its name under ``home`` (``$ATELIER_HOME``): replay finds a
    PNG's model by name and hash, as PNGs carry no paths."""
    monkeypatch.setenv("ATELIER_HOME", str(home))
    (home / "models").mkdir(parents=True, exist_ok=True)
    (home / "models" / folder.name).symlink_to(folder)


@pytest.fixture
def tiny_installed(tiny_model_dir, tmp_path, monkeypatch):
    """The tiny model, also findable by its name ("tiny")."""
    install_by_name(tiny_model_dir, tmp_path / "home", monkeypatch)
    return tiny_model_dir


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Both tiny token models (``token_models.py``: tiny-dalle, tiny-maskgit) installed by name
    under a fresh ATELIER_HOME."""
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path / "home"))
    return install_token_models(tmp_path / "home" / "models")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\nRandom weights, for tests.\n")
    return folder


@pytest.fixture(scope="session")
def stochastic_model_dir(tmp_path_factory):
    """The tiny model with a stochastic default sampler, as the shipped default has."""
    folder = tmp_path_factory.mktemp("models") / "tiny-sde"
    save_model(tiny_model(sampler="dpmpp_2m_sde"), folder, card="# tiny-sde\n")
    return folder


CLIP_TEXT = TextEncoderConfig(kind="transformer", max_length=16, width=16, layers=1, heads=2)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = train_bpe([bp.prompt for bp in load_suite()], vocab_size=300)
    vision = ViTConfig(image_size=32, patch_size=8, width=16, layers=1, heads=2)
    clip = CLIP(
        CLIPConfig(vision=vision, embed_dim=8), build_text_encoder(CLIP_TEXT, tokenizer=tokenizer)
    )
    return save_clip(clip, CLIP_TEXT, tmp_path_factory.mktemp("clip") / "c", card="# c\n")


@pytest.fixture(scope="session")
def second_tiny_model_dir(tmp_path_factory):
    """Another tiny model, with other random weights, for comparisons."""
    folder = tmp_path_factory.mktemp("models") / "tiny-b"
    save_model(tiny_model(seed=1), folder, card="# tiny-b\n")
    return folder


@pytest.fixture(scope="session")
def features_dir(tmp_path_factory):
    """A tiny, untrained shapes feature network folder."""
    from atelier.kinds.features import save_feature_net
    from atelier.models.shapes_features import ShapesFeatureConfig, ShapesFeatureNet

    torch.manual_seed(0)
    net = ShapesFeatureNet(ShapesFeatureConfig(image_size=32, channels=(8, 8, 8), feature_dim=8))
    return save_feature_net(net, tmp_path_factory.mktemp("features") / "f", card="# f\n")
