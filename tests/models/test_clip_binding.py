"""CLIP's binding options: the shipped shapes-clip computes what it did before them, a tiny CLIP
read at its end token learns to tell swapped colours apart, and the probes that measure it."""

import numpy as np
import pytest
import torch

from atelier.data.base import array_to_tensor
from atelier.eval.shapes_probe import swapped_colour_captions, swapped_colour_cosine
from atelier.kinds.clip import load_clip, save_clip
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.shapes.parse import parse_prompt
from atelier.shapes.render import render
from atelier.shapes.scene import realize
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.clip_task import contrastive_loss

PROMPTS = ["a red circle and a blue square", "a blue circle and a red square",
           "a small green triangle"]  # fmt: skip
# Recorded from the shipped shapes-clip on main before the pooling options existed: the first
# four dimensions of each prompt's text embedding and of the image embedding of its render
# (np.random.default_rng(3), 32 px), and the cosine of the two swapped-colour prompts.
SHIPPED_TEXT = [
    [-0.09395866841077805, -0.012002349831163883, -0.026131486520171165, -0.05036577209830284],
    [-0.09605138003826141, -0.011696231551468372, -0.026427723467350006, -0.05243802070617676],
    [-0.14148397743701935, -0.045013170689344406, 0.14255937933921814, -0.021241378039121628],
]
SHIPPED_IMAGE = [
    [-0.12766863405704498, -0.021753225475549698, 0.0028365321923047304, -0.057387709617614746],
    [-0.0918257087469101, -0.024321068078279495, -0.004017584025859833, 0.006758079398423433],
    [-0.14265176653862, -0.06923580169677734, 0.12731948494911194, -0.009334827773272991],
]
SHIPPED_SWAP_COSINE = 0.9998313188552856


def test_shipped_clip_loads_as_mean_pooling_and_embeds_as_before():
    clip = load_clip("shapes-clip")
    assert clip.text_config.pooling == "mean" and clip.text.config.pooling == "mean"
    assert not clip.text.config.causal
    rng = np.random.default_rng(3)
    images = torch.stack([array_to_tensor(render(realize(parse_prompt(p), rng), 32))
                          for p in PROMPTS])  # fmt: skip
    with torch.no_grad():
        text, image = clip.encode_text(PROMPTS), clip.encode_image(images)
    torch.testing.assert_close(text[:, :4], torch.tensor(SHIPPED_TEXT), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(image[:, :4], torch.tensor(SHIPPED_IMAGE), rtol=1e-4, atol=1e-6)
    assert (text[0] @ text[1]).item() == pytest.approx(SHIPPED_SWAP_COSINE, rel=1e-6)
    # Bit for bit: the pooled vector is the masked mean the tower computed before the options.
    batch = clip.text.tokenizer.encode(PROMPTS, max_length=clip.text.max_length)
    with torch.no_grad():
        states, pooled = clip.text.model(batch.ids, batch.mask)
    weights = batch.mask.to(states.dtype).unsqueeze(-1)
    assert torch.equal(pooled, (states * weights).sum(1) / weights.sum(1).clamp(min=1.0))


def minimal_pairs() -> tuple[torch.Tensor, list[str], list[str]]:
    """Three pairs of 32 px scenes, each pair one layout whose two shapes trade colours; every
    image's caption and, as its hard negative, the caption of its twin."""
    captions, negatives = [], []
    for c1, c2 in (("red", "blue"), ("green", "yellow"), ("cyan", "purple")):
        for a, b in ((c1, c2), (c2, c1)):
            captions.append(f"a {a} circle and a {b} square")
            negatives.append(f"a {b} circle and a {a} square")
    images = torch.stack([
        array_to_tensor(render(realize(parse_prompt(c), np.random.default_rng(k // 2)), 32))
        for k, c in enumerate(captions)
    ])  # fmt: skip
    return images, captions, negatives


def tiny_clip(pooling: str, captions: list[str], seed: int = 0) -> CLIP:
    tokenizer = train_bpe(captions * 4, vocab_size=300)
    torch.manual_seed(seed)
    text = TextEncoderConfig(max_length=16, width=32, layers=1, heads=2, pooling=pooling)
    vision = ViTConfig(image_size=32, patch_size=4, width=32, layers=1, heads=2)
    return CLIP(
        CLIPConfig(vision=vision, embed_dim=64), build_text_encoder(text, tokenizer=tokenizer)
    )


def binding(clip: CLIP, images, captions, negatives) -> tuple[float, float]:
    """(mean cosine of each caption and its swapped twin, share of images scoring their own
    caption above the twin's)."""
    with torch.no_grad():
        t, n, i = clip.encode_text(captions), clip.encode_text(negatives), clip.encode_image(images)
    won = (i * t).sum(-1) > (i * n).sum(-1)
    return float((t * n).sum(-1).mean()), float(won.float().mean())


def test_tiny_eos_clip_learns_to_tell_swapped_colours_apart():
    # A causal text tower read at its end token, trained with each image's twin caption as its
    # hard negative. At initialisation the two captions of a pair embed at cosine ~1; after 120
    # steps (about a second; in a sweep over ten seeds, nine had separated by then) they are
    # apart and most images prefer their own caption.
    images, captions, negatives = minimal_pairs()
    clip = tiny_clip("eos", captions)
    cosine, _ = binding(clip, images, captions, negatives)
    assert cosine > 0.999
    optimizer = torch.optim.AdamW(clip.parameters(), lr=2e-3)
    for _ in range(120):
        loss = contrastive_loss(clip(images, captions + negatives), captions, negatives)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    cosine, accuracy = binding(clip, images, captions, negatives)
    assert cosine < 0.99 and accuracy > 0.5


@pytest.mark.parametrize("pooling", ["eos", "attention"])
def test_a_folder_keeps_its_pooling(pooling, tmp_path):
    _, captions, _ = minimal_pairs()
    clip = tiny_clip(pooling, captions).eval()
    text = TextEncoderConfig(max_length=16, width=32, layers=1, heads=2, pooling=pooling)
    loaded = load_clip(save_clip(clip, text, tmp_path / "c", card="# c\n"))
    assert loaded.text_config.pooling == pooling and loaded.text.config.pooling == pooling
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(captions), clip.encode_text(captions))
    config = tmp_path / "c" / "config.json"
    config.write_text(config.read_text().replace(f'"pooling": "{pooling}"', '"pooling": "mean"'))
    with pytest.raises(ValueError, match="reads the text tower by 'mean' pooling"):
        load_clip(tmp_path / "c")


def test_swapped_colour_probe():
    pairs = swapped_colour_captions()
    assert len(pairs) == len(set(pairs)) == 90  # 15 colour pairs x 6 ordered shape pairs
    assert ("a red circle and a blue square", "a blue circle and a red square") in pairs
    for first, second in pairs:
        assert sorted(first.split()) == sorted(second.split()) and first != second
    _, captions, _ = minimal_pairs()
    clip = tiny_clip("mean", captions)
    with torch.no_grad():
        a = clip.encode_text([p for p, _ in pairs])
        b = clip.encode_text([q for _, q in pairs])
    assert swapped_colour_cosine(clip) == pytest.approx(float((a * b).sum(-1).mean()), abs=1e-6)
