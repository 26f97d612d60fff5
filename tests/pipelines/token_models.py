"""Tiny, randomly initialised token models (DALL-E and MaskGIT kinds) for pipeline and CLI tests:
16 px images of 4x4 tokens of 32 codes."""

from pathlib import Path

import torch

from atelier.kinds import dalle, maskgit
from atelier.kinds.token_model import TokenModel, save_token_model
from atelier.kinds.tokenizer import TrainedTokenizer
from atelier.models.token_transformer import TokenTransformerConfig
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.text.tokenizer import train_bpe

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles"] * 4
FAMILIES = {"dalle": dalle.FAMILY, "maskgit": maskgit.FAMILY}


def tiny_tokenizer(codebook_size: int = 32, seed: int = 0) -> TrainedTokenizer:
    """A random VQ tokenizer: 16 px images, 4x4 tokens."""
    torch.manual_seed(seed)
    config = TokenizerConfig(block_channels=(8, 16, 16), groups=8, embed_dim=8,
                             codebook_size=codebook_size)  # fmt: skip
    return TrainedTokenizer("tiny-tok", ImageTokenizer(config).eval(), resolution=16)


def tiny_token_model(kind: str, name: str | None = None, seed: int = 0) -> TokenModel:
    family = FAMILIES[kind]
    text_tokenizer = train_bpe(CAPTIONS, vocab_size=300)
    image_tokenizer = tiny_tokenizer()
    config = TokenTransformerConfig(
        text_vocab=text_tokenizer.vocab_size,
        text_length=10,
        codebook_size=32,
        grid=4,
        width=32,
        layers=2,
        heads=2,
    )
    torch.manual_seed(seed)
    network = family.network(config).eval()
    with torch.no_grad():  # far from the init, so samples differ from seed to seed
        for p in network.parameters():
            p.normal_(0, 0.3)
    defaults = family.options()
    return TokenModel(family, name or f"tiny-{kind}", network, image_tokenizer, text_tokenizer,
                      defaults)  # fmt: skip


def install_token_models(models: Path) -> Path:
    """Both tiny models saved under ``models`` (``$ATELIER_HOME/models``) by their names."""
    for kind in FAMILIES:
        model = tiny_token_model(kind)
        save_token_model(model, models / model.name, card=f"# {model.name}\n")
    return models
