"""Metrics of the real sets: reconstruction quality against torchmetrics, R-precision and
zero-shot categories on a CLIP whose answers are known, FID against the held-out pictures
beside the floor, the digits suite's prompts and table."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from atelier.data.augment import random_affine
from atelier.data.mnist import WORDS
from atelier.eval.autoencoder import reconstruction_quality
from atelier.eval.clip_metrics import r_precision
from atelier.eval.digits import DrawnDigit, digit_prompts, digit_table
from atelier.eval.emoji import category_accuracy, category_label, emoji_prompts
from atelier.eval.fid import FeatureStats, frechet_distance
from atelier.eval.real_sets import box_blur, feature_checks, real_distribution
from tests.data.fakes import built_emoji


class Blurring:
    """An autoencoder whose round trip is a 3 x 3 box blur: a known reconstruction."""

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        return box_blur(x)


def test_reconstruction_quality_is_the_mean_of_torchmetrics_per_image_scores():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 32, 32, generator=g) * 2 - 1
    q = reconstruction_quality(Blurring(), x, batch=2)
    a, b = (x + 1) / 2, (box_blur(x).clamp(-1, 1) + 1) / 2
    psnr = [peak_signal_noise_ratio(a[i : i + 1], b[i : i + 1], data_range=1.0) for i in range(5)]
    ssim = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    assert q.images == 5
    assert q.psnr == pytest.approx(float(torch.stack(psnr).mean()), rel=1e-5)
    assert q.ssim == pytest.approx(float(ssim.mean()), rel=1e-4)
    assert q.psnr_std == pytest.approx(float(torch.stack(psnr).std()), rel=1e-4)


def test_box_blur_keeps_a_constant_and_spreads_a_point():
    flat = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(box_blur(flat), flat)
    point = torch.zeros(1, 1, 5, 5)
    point[0, 0, 2, 2] = 9.0
    torch.testing.assert_close(box_blur(point)[0, 0, 1:4, 1:4], torch.ones(3, 3))


class KnownClip:
    """A stand-in CLIP: image i embeds as the one-hot of its ``truth[i]``; a text as the one-hot
    of its place in ``vocabulary``."""

    image_size = 4

    def __init__(self, vocabulary, truth):
        self.vocabulary, self.truth = list(vocabulary), list(truth)
        self.seen = 0

    def encode_image(self, images):
        ids = torch.as_tensor(self.truth[self.seen : self.seen + len(images)])
        self.seen += len(images)
        return F.one_hot(ids, len(self.vocabulary)).float()

    def encode_text(self, texts):
        return F.one_hot(torch.tensor([self.vocabulary.index(t) for t in texts]),
                         len(self.vocabulary)).float()  # fmt: skip

    def temperature_scale(self):
        return torch.tensor(100.0)


def test_r_precision_finds_every_right_name_and_states_chance():
    names = [f"name {k}" for k in range(30)]
    texts = names * 2  # two pictures of each name
    clip = KnownClip(names, [k % 30 for k in range(60)])
    r = r_precision(clip, torch.zeros(60, 3, 4, 4), texts, candidates=10)
    assert (r.value, r.chance, r.candidates, r.images) == (1.0, 0.1, 10, 60)
    # Every picture embedded as the wrong name: its own never ranks first.
    wrong = KnownClip(names, [(k + 1) % 30 for k in range(60)])
    assert r_precision(wrong, torch.zeros(60, 3, 4, 4), texts, candidates=100).value == 0.0
    with pytest.raises(ValueError, match="two distinct"):
        r_precision(clip, torch.zeros(2, 3, 4, 4), ["name 0", "name 0"])


def test_category_accuracy_is_balanced_and_beside_chance_and_the_majority():
    categories = ["Food & Drink"] * 6 + ["Symbols"] * 2
    labels = [category_label(c) for c in sorted(set(categories))]
    # Food right 6/6, symbols right 1/2.
    truth = [0] * 6 + [1, 0]
    c = category_accuracy(KnownClip(labels, truth), torch.zeros(8, 3, 4, 4), categories)
    assert c.accuracy == pytest.approx(7 / 8) and c.balanced == pytest.approx((1 + 0.5) / 2)
    assert (c.chance, c.majority, c.categories, c.images) == (0.5, 0.75, 2, 8)


def test_real_distribution_compares_with_the_held_out_and_floors_with_training_pictures():
    g = torch.Generator().manual_seed(0)
    held, train = torch.rand(40, 3, 2, 2, generator=g), torch.rand(60, 3, 2, 2, generator=g)

    def flat(x):
        return x.flatten(1)

    same = real_distribution("flat", flat, held.clone(), held=held, train=train)
    assert same.fid == pytest.approx(0.0, abs=1e-6) and same.n == 40
    subset = train[torch.randperm(60, generator=torch.Generator().manual_seed(0))[:40]]
    floor = frechet_distance(FeatureStats.of(flat(held)), FeatureStats.of(flat(subset)))
    assert same.fid_floor == pytest.approx(floor)
    shifted = real_distribution("flat", flat, held + 1, held=held, train=train)
    assert shifted.fid == pytest.approx(12.0, rel=1e-6)  # 12 features, each moved by 1
    assert shifted.precision == 0.0
    checks = feature_checks(flat, held=held, train=train)
    assert checks["training pictures (the floor)"] == pytest.approx(floor)
    grey = subset.mean(1, keepdim=True).expand_as(subset)
    assert checks["the same in grey"] == pytest.approx(
        frechet_distance(FeatureStats.of(flat(held)), FeatureStats.of(flat(grey))))
    assert len(checks) == 4


def test_moved_pictures_keep_their_background():
    white = torch.ones(2, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(random_affine(white, g, background=1.0), white)
    dark = -torch.ones(2, 3, 16, 16)
    torch.testing.assert_close(random_affine(dark, g), dark)


def test_digit_prompts_ask_every_digit_in_seen_and_held_out_phrasings():
    prompts = digit_prompts()
    assert len(prompts) == 90 and len({p.id for p in prompts}) == 90
    assert sum(p.split == "held_out" for p in prompts) == 30
    assert all(str(p.digit) in p.prompt or WORDS[p.digit] in p.prompt for p in prompts)
    seven = [p.prompt for p in prompts if p.digit == 7]
    assert "a handwritten 7" in seven and "a drawing of the number 7" in seven


def test_digit_table_scores_each_digit_and_split_over_images():
    drawn = [DrawnDigit(f"{d}-{s}", "p", d, split, s, d if s % 2 == 0 else 0, s % 2 == 0 or d == 0)
             for d in range(10) for split in ("seen", "held_out") for s in range(4)]  # fmt: skip
    table = digit_table(drawn)
    assert table["0"]["all"].accuracy == 1.0 and table["5"]["seen"].accuracy == 0.5
    assert table["overall"]["all"].images == 80
    assert table["overall"]["all"].accuracy == pytest.approx((8 + 9 * 4) / 80)
    assert list(table)[-1] == "overall"


def test_emoji_prompts_hold_every_held_out_picture_then_seen_ones(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = built_emoji(tmp_path)
    prompts = emoji_prompts(folder, seen=4)
    held = [p for p in prompts if p.split == "held_out"]
    assert len(held) == 6 and all(p.name.startswith("held thing") for p in held)
    seen = [p for p in prompts if p.split == "seen"]
    assert len(seen) == 4 and all(p.name.startswith("kept thing") for p in seen)
    assert len({p.id for p in prompts}) == len(prompts)
