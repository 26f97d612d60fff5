"""Tiny, randomly initialised token models (DALL-E and MaskGIT kinds) for pipeline and CLI tests:
16 px images of 4x4 tokens of 32 codes."""

from dataclasses import replace
from pathlib import Path

import torch

from atelier.kinds import dalle, maskgit
from atelier.kinds.token_model import TokenModel, save_token_model
from atelier.kinds.tokenizer import TrainedTokenizer
from atelier.models.token_transformer import TokenTransformerConfig
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles"] * 4
FAMILIES = {"dalle": dalle.FAMILY, "maskgit": maskgit.FAMILY}


def tiny_tokenizer(codebook_size: int = 32, seed: int = 0) -> TrainedTokenizer:
    """A random VQ tokenizer: 16 px images, 4x4 tokens."""
    torch.manual_seed(seed)
    config = TokenizerConfig(block_channels=(8, 16, 16), groups=8, embed_dim=8,
                             codebook_size=codebook_size)  # fmt: skip
    return TrainedTokenizer("tiny-tok", ImageTokenizer(config).eval(), resolution=16)


# MiniLM's penultimate layer in a 10-token window: 8 word pieces between [CLS] and [SEP]. No
# prompt cache, so that a batch equal to single runs does not rest on it.
MINILM = TextEncoderConfig(kind="minilm", max_length=10, hidden_layer=-2, cache_size=0)


def tiny_token_model(
    kind: str, name: str | None = None, seed: int = 0, text: str = "prefix"
) -> TokenModel:
    """``text``: the caption as a BPE prefix, or the frozen MiniLM read by cross-attention."""
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
    encoder = None
    if text == "cross_attention":
        config = replace(config, text_conditioning=text, context_dim=384)
        text_tokenizer, encoder = None, build_text_encoder(MINILM)
    torch.manual_seed(seed)
    network = family.network(config).eval()
    with torch.no_grad():  # far from the init, so samples differ from seed to seed
        for p in network.parameters():
            p.normal_(0, 0.3)
    defaults = family.options()
    return TokenModel(family, name or f"tiny-{kind}", network, image_tokenizer, text_tokenizer,
                      defaults, text_encoder=encoder,
                      text_encoder_config=MINILM if encoder is not None else None)  # fmt: skip


def install_token_models(models: Path) -> Path:
    """Both tiny models saved under ``models`` (``$ATELIER_HOME/models``) by their names."""
    for kind in FAMILIES:
        model = tiny_token_model(kind)
        save_token_model(model, models / model.name, card=f"# {model.name}\n")
    return models
