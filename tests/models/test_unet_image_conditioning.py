"""The UNet as unCLIP's decoder: conditioned on a CLIP image embedding, which it ignores where
it is dropped; and, with the option off, every shipped UNet computes what it did before it."""

import json
from pathlib import Path

import pytest
import torch

from atelier.kinds.folder import SHIPPED
from atelier.kinds.registry import load_model
from atelier.models.unet import ImageCondition, UNet, UNetConfig
from atelier.text.encoder import TextEmbedding
from tests.numerics import assert_close_to

DECODER = UNetConfig(in_channels=3, out_channels=3, block_channels=(16, 32), layers_per_block=1,
                     attention_levels=(False, True), heads=2, context_dim=16, groups=8,
                     image_embed_dim=8, image_embed_tokens=2)  # fmt: skip
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "shipped_unet_projections.json"


def inputs(b: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, 16, 16, generator=g)
    t = torch.tensor([3.0, 400.0, 999.0])[:b]
    mask = torch.ones(b, 5, dtype=torch.bool)
    mask[1:, 3:] = False
    text = TextEmbedding(torch.randn(b, 5, 16, generator=g) * mask[..., None], mask,
                         torch.zeros(b, 16))  # fmt: skip
    return x, t, text, torch.nn.functional.normalize(torch.randn(b, 8, generator=g), dim=-1)


def test_a_dropped_embedding_is_never_read():
    torch.manual_seed(0)
    unet = UNet(DECODER).eval()
    with torch.no_grad():  # a trained null embedding is not zero
        unet.image_embedding.null.normal_()
    x, t, text, z = inputs()
    dropped = torch.ones(3, dtype=torch.bool)
    with torch.no_grad():
        outs = [
            unet(x, t, text, image=ImageCondition(e, dropped))
            for e in (z, torch.zeros_like(z), torch.full_like(z, float("nan")), -z)
        ]
    for out in outs[1:]:
        assert torch.equal(out, outs[0])
    # Kept, the embedding is read: through the time embedding and as context tokens.
    kept = ImageCondition(z, torch.zeros(3, dtype=torch.bool))
    with torch.no_grad():
        assert not torch.allclose(unet(x, t, text, image=kept), outs[0])
        mixed = unet(x, t, text, image=ImageCondition(z, torch.tensor([True, False, True])))
    torch.testing.assert_close(mixed[0], outs[0][0], rtol=0, atol=1e-5)


def test_the_image_condition_is_checked():
    unet = UNet(DECODER).eval()
    x, t, text, z = inputs()
    with pytest.raises(ValueError, match="pass image exactly when"):
        unet(x, t, text)
    with pytest.raises(ValueError, match=r"image.embeds must be \(3, 8\)"):
        unet(x, t, text, image=ImageCondition(z[:, :4], torch.zeros(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="image.dropped must be bool"):
        unet(x, t, text, image=ImageCondition(z, torch.zeros(3)))
    with pytest.raises(ValueError, match="image_embed_tokens need context_dim"):
        UNetConfig(context_dim=None, image_embed_dim=8, attention_levels=(False, False, False))
    plain = UNet(UNetConfig(block_channels=(16, 32), attention_levels=(False, True), heads=2,
                            context_dim=16, groups=8))  # fmt: skip
    assert plain.image_embedding is None
    one = TextEmbedding(text.states[:1], text.mask[:1], text.pooled[:1])
    with pytest.raises(ValueError, match="pass image exactly when"):
        plain(torch.randn(1, 4, 8, 8), t[:1], one,
              image=ImageCondition(z[:1], torch.zeros(1, dtype=torch.bool)))  # fmt: skip


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())))
def test_every_shipped_unet_computes_what_it_did(name):
    # Projections of one forward per shipped UNet, recorded before the UNet took image
    # embeddings (commit 9f62896); loading also checks the weights' names and shapes exactly,
    # so no parameter was added to a UNet that does not ask for one.
    torch.set_num_threads(1)
    model = load_model(SHIPPED / name)
    unet = model.unet
    assert unet.image_embedding is None and unet.config.image_embed_dim is None
    c = unet.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, c.in_channels, 16, 16, generator=g)
    t = torch.tensor([10.0, 700.0])
    context = None
    if c.context_dim:
        mask = torch.ones(2, 6, dtype=torch.bool)
        mask[1, 4:] = False
        context = TextEmbedding(torch.randn(2, 6, c.context_dim, generator=g), mask,
                                torch.zeros(2, c.pooled_dim or 1))  # fmt: skip
    level = torch.tensor([50.0, 200.0]) if c.noise_level_conditioning else None
    with torch.no_grad():
        y = unet(x, t, context, level)
    projected = y.flatten() @ torch.randn(y.numel(), 16, generator=g)
    reference = torch.tensor(json.loads(GOLDEN.read_text())[name])
    assert_close_to(projected, reference, rel=1e-4)
