"""CLIP-space operations: DALL-E 2's pick of the closer sample, slerp, text diffs."""

import math

import pytest
import torch
import torch.nn.functional as F

from atelier.unclip.embeddings import pick_closer, slerp, text_diff


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_the_pick_keeps_the_candidate_with_the_larger_dot_product_with_the_caption():
    z_t = unit([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    first = unit([0.2, 1.0, 0.0], [0.9, 0.1, 0.0])  # image 0's closer is its second
    second = unit([0.0, 1.0, 0.3], [1.0, 0.0, 0.0])  # image 1's is its first
    candidates = torch.stack([first, second])  # (2, 2, 3)
    picked = pick_closer(candidates, z_t)
    assert torch.equal(picked[0], candidates[0, 1]) and torch.equal(picked[1], candidates[1, 0])
    # The empty prompt's z_t is zero: every candidate ties and the first is kept.
    assert torch.equal(pick_closer(candidates, torch.zeros(2, 3)), candidates[:, 0])
    # One candidate is kept as it is.
    assert torch.equal(pick_closer(candidates[:, :1], z_t), candidates[:, 0])
    with pytest.raises(ValueError, match=r"\(B, K, E\)"):
        pick_closer(candidates[0], z_t)


def test_slerp_runs_along_the_great_circle():
    a, b = unit([1.0, 0.0]), unit([0.0, 1.0])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    half = slerp(a, b, 0.5)
    assert torch.allclose(half, unit([1.0, 1.0]), atol=1e-6)
    third = slerp(a, b, 1 / 3)  # a third of the 90 degrees, unlike a lerp's normalised chord
    assert math.isclose(float(third[0, 1]), math.sin(math.pi / 6), abs_tol=1e-6)
    # Parallel vectors: no division by sin(0).
    assert torch.allclose(slerp(a, a, 0.3), a)
    per_image = slerp(torch.cat([a, a]), torch.cat([b, b]), torch.tensor([0.0, 1.0]))
    assert torch.allclose(per_image, torch.cat([a, b]))
    # One pair of ends and T thetas: the path (T, E), its ends the two vectors bit for bit.
    g = torch.Generator().manual_seed(0)
    c, d = (F.normalize(torch.randn(1, 16, generator=g), dim=-1) for _ in range(2))
    path = slerp(c, d, torch.linspace(0, 1, 5))
    assert path.shape == (5, 16) and torch.equal(path[0], c[0]) and torch.equal(path[-1], d[0])
    assert torch.allclose(path[2], slerp(c, d, 0.5)[0])
    assert torch.allclose(path.norm(dim=-1), torch.ones(5))


def test_a_text_diff_moves_the_image_toward_the_new_caption_and_away_from_the_old():
    g = torch.Generator().manual_seed(0)
    z_i, z_t, z_t0 = (F.normalize(torch.randn(1, 16, generator=g), dim=-1) for _ in range(3))
    direction = F.normalize(z_t - z_t0, dim=-1)
    before = float((z_i * direction).sum())
    moved = [text_diff(z_i, z_t, z_t0, a) for a in (0.0, 0.25, 0.5)]
    assert torch.allclose(moved[0], z_i)
    along = [float((m * direction).sum()) for m in moved]
    assert before == pytest.approx(along[0]) and along[0] < along[1] < along[2]
    assert all(torch.allclose(m.norm(dim=-1), torch.ones(1)) for m in moved)
    with pytest.raises(ValueError, match="same CLIP embedding"):
        text_diff(z_i, z_t, z_t, 0.5)
    with pytest.raises(ValueError, match=r"amount must be in \[0, 1\]"):
        text_diff(z_i, z_t, z_t0, 1.5)
