"""A tiny, randomly initialised latent text-to-image model folder for pipeline and CLI tests."""

import pytest
import torch

from atelier.diffusion.config import DiffusionConfig
from atelier.models.unet import UNet, UNetConfig
from atelier.models.vae import AutoencoderKL, VAEConfig
from atelier.pipelines.model_folder import Model, ModelConfig, save_model
from atelier.pipelines.text2image import SamplingOptions
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles"] * 4


def tiny_model() -> Model:
    torch.manual_seed(0)
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
        defaults=SamplingOptions(steps=4, guidance=2.0, sampler="euler"),
    )
    return Model(
        config, UNet(config.unet).eval(), text_encoder.eval(), AutoencoderKL(config.vae).eval()
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(tiny_model(), folder, card="# tiny\nRandom weights, for tests.\n")
    return folder
