"""A tiny, randomly initialised unCLIP model (and its prior) for pipeline and CLI tests: 16 px
images, a CLIP embedding 8 wide, captions read in a 16-token window of 16-wide states."""

from pathlib import Path

import torch

from atelier.diffusion.config import DiffusionConfig
from atelier.kinds.unclip import UnCLIPModel, save_unclip
from atelier.kinds.unclip_prior import TrainedPrior, save_prior
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorConfig, PriorTransformer
from atelier.models.unet import UNet, UNetConfig
from atelier.shapes.bench import load_suite
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.unclip.options import UnCLIPOptions

TEXT = TextEncoderConfig(kind="transformer", max_length=16, width=16, layers=1, heads=2)
PRIOR_DIFFUSION = DiffusionConfig(beta_schedule="cosine", prediction_type="sample")
DECODER_DIFFUSION = DiffusionConfig(prediction_type="v_prediction", zero_terminal_snr=True)


def tiny_clip(seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    # Trained on the suite's prompts, so that eval's prompts fit the window.
    bpe = train_bpe([bp.prompt for bp in load_suite()], vocab_size=300)
    text = build_text_encoder(TEXT, tokenizer=bpe)
    vision = ViTConfig(image_size=16, patch_size=8, width=16, layers=1, heads=2)
    clip = CLIP(CLIPConfig(vision=vision, embed_dim=8), text).eval()
    clip.text_config = TEXT
    return clip


def tiny_prior(seed: int = 0, clip: CLIP | None = None) -> TrainedPrior:
    clip = clip or tiny_clip(seed)
    torch.manual_seed(seed)
    config = PriorConfig(embed_dim=8, text_dim=16, text_length=16, width=32, layers=2, heads=2)
    space = LatentSpace(mean=tuple(0.05 * k for k in range(8)), std=(0.3,) * 8)
    return TrainedPrior("tiny-prior", PriorTransformer(config).eval(), PRIOR_DIFFUSION, space, clip)


def tiny_decoder_config() -> UNetConfig:
    return UNetConfig(in_channels=3, out_channels=3, block_channels=(16, 32), layers_per_block=1,
                      attention_levels=(False, True), heads=2, context_dim=16, groups=8,
                      image_embed_dim=8, image_embed_tokens=2)  # fmt: skip


def tiny_unclip(name: str = "tiny-unclip", seed: int = 0) -> UnCLIPModel:
    prior = tiny_prior(seed)
    torch.manual_seed(seed)
    decoder = UNet(tiny_decoder_config()).eval()
    with torch.no_grad():  # far from the init, so that images differ from seed to seed
        for p in [*decoder.parameters(), *prior.prior.parameters()]:
            p.add_(torch.randn_like(p) * 0.05)
    options = UnCLIPOptions(steps=3, prior_steps=3)
    return UnCLIPModel(name, prior, decoder, DECODER_DIFFUSION, 16, options)


def install_unclip(models: Path) -> Path:
    """The tiny unCLIP model saved under ``models`` (``$ATELIER_HOME/models``) as tiny-unclip,
    and its prior alone as tiny-prior."""
    model = tiny_unclip()
    save_unclip(model, models / model.name, card=f"# {model.name}\n", prior_card="# prior\n")
    save_prior(model.prior, models / "tiny-prior", card="# tiny-prior\n", clip_card="# clip\n")
    return models
