"""CLIP: the towers' contracts, the contrastive loss, a tiny overfit, metrics and the folder."""

import math

import pytest
import torch
import torch.nn.functional as F

from atelier.data.base import fit_images
from atelier.eval.clip_metrics import (
    clip_scores,
    hard_negative_accuracy,
    retrieval_recall,
    zero_shot_accuracy,
    zero_shot_probabilities,
)
from atelier.eval.shapes_probe import single_object_labels, single_object_probe
from atelier.kinds.clip import load_clip, save_clip
from atelier.models.clip import CLIP, CLIPConfig, ViTConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.clip_task import contrastive_loss

TEXT = TextEncoderConfig(kind="transformer", max_length=16, width=32, layers=1, heads=2)


def tiny_clip(seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    tokenizer = train_bpe(single_object_labels() * 4, vocab_size=300)
    vision = ViTConfig(image_size=32, patch_size=4, width=32, layers=1, heads=2)
    return CLIP(
        CLIPConfig(vision=vision, embed_dim=16), build_text_encoder(TEXT, tokenizer=tokenizer)
    )


def test_embeddings_are_unit_vectors_and_logits_scaled():
    clip = tiny_clip()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    prompts = ["a red circle", "a blue square", "a green triangle"]
    e_i, e_t = clip.encode_image(images), clip.encode_text(prompts)
    assert e_i.shape == (3, 16) and e_t.shape == (3, 16)
    torch.testing.assert_close(e_i.norm(dim=-1), torch.ones(3))
    assert clip.temperature_scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    torch.testing.assert_close(clip(images, prompts), (e_i @ e_t.T) / 0.07, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        clip.logit_scale.fill_(10.0)
    assert clip.temperature_scale().item() == pytest.approx(100.0)  # capped, as in the paper


def test_wrong_image_size_names_the_fix():
    with pytest.raises(ValueError, match="resize to 32 px"):
        tiny_clip().encode_image(torch.zeros(1, 3, 64, 64))
    # The metrics resize for the tower: a 64 px image scores like its 32 px downsample.
    clip = tiny_clip()
    big = torch.rand(1, 3, 64, 64) * 2 - 1
    small = fit_images(big, 32)
    assert small.shape == (1, 3, 32, 32)
    torch.testing.assert_close(clip_scores(clip, big, ["a red circle"]),
                               clip_scores(clip, small, ["a red circle"]))  # fmt: skip
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTConfig(image_size=30, patch_size=8)


def test_contrastive_loss_is_symmetric_cross_entropy():
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(5)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(contrastive_loss(logits), expected)
    torch.testing.assert_close(contrastive_loss(logits, list("abcde")), expected)


def test_identical_captions_are_not_negatives():
    # Two images share a caption: all four of their pairs are right answers. At logits that
    # split those pairs evenly, the duplicate-aware loss has no gradient pushing them apart;
    # the plain diagonal loss would push each image away from its twin's identical caption.
    captions = ["a red circle", "a red circle", "a blue square"]
    even = torch.tensor([[9.0, 9.0, -9.0], [9.0, 9.0, -9.0], [-9.0, -9.0, 9.0]], requires_grad=True)
    contrastive_loss(even, captions).backward()
    assert even.grad.abs().max() < 1e-6
    plain = even.detach().clone().requires_grad_(True)
    contrastive_loss(plain).backward()
    assert plain.grad[0, 1] > 0.1  # descent would lower the twin pair's logit


def test_hard_negatives_join_the_rows_only():
    # NegCLIP: each image's row competes against the B captions and the M negatives; each
    # caption's column still ranks the B images only.
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, generator=g)
    captions, negatives = ["a", "b", "c"], ["x", "y"]
    rows = F.cross_entropy(logits, torch.arange(3))
    cols = F.cross_entropy(logits[:, :3].T, torch.arange(3))
    torch.testing.assert_close(contrastive_loss(logits, captions, negatives), (rows + cols) / 2)
    # A negative that is another image's true caption counts as a true pair for that image.
    shared = contrastive_loss(logits, captions, ["c", "y"])
    target = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0.5, 0.5, 0]])
    expected = (F.cross_entropy(logits, target) + cols) / 2
    torch.testing.assert_close(shared, expected)
    with pytest.raises(ValueError, match=r"\(B, B \+ M\) = \(3, 5\)"):
        contrastive_loss(logits[:, :4], captions, negatives)
    with pytest.raises(ValueError, match="need the captions"):
        contrastive_loss(logits, None, negatives)


def test_hard_negative_accuracy_counts_wins_per_kind():
    clip = tiny_clip()
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    captions = ["a red circle", "a blue square", "a green triangle"] * 2
    negatives = ["a blue circle", "a red square", "a green circle"] * 2
    kinds = ["recolor", "recolor", "reshape"] * 2
    with torch.no_grad():
        e = clip.encode_image(images)
        won = (e * clip.encode_text(captions)).sum(-1) > (e * clip.encode_text(negatives)).sum(-1)
    got = hard_negative_accuracy(clip, images, captions, negatives, kinds)
    assert got["all"] == pytest.approx(won.float().mean().item())
    assert got["reshape"] == pytest.approx(won[[2, 5]].float().mean().item())
    assert got["recolor"] == pytest.approx(won[[0, 1, 3, 4]].float().mean().item())
    with pytest.raises(ValueError, match="one negative"):
        hard_negative_accuracy(clip, images, captions, negatives[:5], kinds)


def test_tiny_clip_overfits_and_classifies_zero_shot():
    images, labels, truth = single_object_probe(1, size=32)  # 18 images, one per class
    clip = tiny_clip()
    optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-3)
    captions = [labels[k] for k in truth]
    first = None
    for _ in range(200):
        loss = contrastive_loss(clip(images, captions), captions)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10
    clip.eval()
    assert zero_shot_accuracy(clip, images, labels, truth) == 1.0
    probs = zero_shot_probabilities(clip, images, labels)
    torch.testing.assert_close(probs.sum(-1), torch.ones(18))
    recall = retrieval_recall(clip, images, captions, ks=(1, 5))
    assert recall["image_to_text_R@1"] == 1.0 and recall["text_to_image_R@1"] == 1.0


def test_clip_score_is_torchmetrics_definition():
    clip = tiny_clip()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    captions = ["a red circle", "a blue square", "a green triangle", "a cyan circle"]
    cos = (clip.encode_image(images) * clip.encode_text(captions)).sum(-1)
    expected = 100 * cos.clamp(min=0)
    torch.testing.assert_close(clip_scores(clip, images, captions), expected)
    with pytest.raises(ValueError, match="4 images but 3 captions"):
        clip_scores(clip, images, captions[:3])


def test_folder_round_trip_gives_equal_outputs(tmp_path):
    clip = tiny_clip().eval()
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(20.0))
    folder = save_clip(clip, TEXT, tmp_path / "c", card="# c\n")
    loaded = load_clip(folder)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    prompts = ["a red circle", "two blue squares"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, prompts), clip(images, prompts))
    (folder / "config.json").write_text('{"kind": "vae"}')
    with pytest.raises(ValueError, match="not a clip model"):
        load_clip(folder)
