"""Quantizers: straight-through gradients, the EMA codebook and its restarts, the Gumbel
relaxation, usage and perplexity, and the tokenizer around them (shapes, validation)."""

import math
from dataclasses import replace

import pytest
import torch

from atelier.models.quantizer import (
    GumbelQuantizer,
    VectorQuantizer,
    code_counts,
    perplexity,
    usage,
)
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig

TINY = TokenizerConfig(block_channels=(8, 16, 16), groups=8, embed_dim=4, codebook_size=16)


def vq_with_codebook(codebook: torch.Tensor, **kwargs) -> VectorQuantizer:
    """A VQ whose codebook is ``codebook`` (K, D), each entry counted once, past its data init."""
    vq = VectorQuantizer(codebook_size=len(codebook), dim=codebook.shape[1], **kwargs)
    vq.codebook.copy_(codebook)
    vq.embed_sum.copy_(codebook)
    vq.initialised.fill_(True)
    return vq


def grid(vectors: list[list[float]]) -> torch.Tensor:
    """z (1, D, 1, N) holding the given N vectors of D values along its width."""
    return torch.tensor(vectors).t()[None, :, None, :]


@pytest.mark.parametrize("kind", ["vq", "gumbel"])
def test_straight_through_gradients_reach_the_encoder(kind):
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(replace(TINY, quantizer=kind)).train()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    x_tilde, quantized = tokenizer(x)
    ((x_tilde - x).abs().mean()).backward()  # the reconstruction alone, no quantizer loss
    grad = tokenizer.encoder.conv_in.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert quantized.codes.shape == (2, 4, 4) and quantized.codes.dtype == torch.long


def test_vq_gradient_passes_unchanged():
    """dL/dz = dL/dz_q for the straight-through estimator; the commitment adds beta's term."""
    vq = vq_with_codebook(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), beta=0.5).train()
    z = grid([[0.1, 0.2], [0.9, 0.7]]).requires_grad_(True)
    weights = torch.randn(z.shape)
    out = vq(z)
    (through,) = torch.autograd.grad(out.z_q, z, weights, retain_graph=True)
    assert torch.allclose(through, weights)
    (commitment,) = torch.autograd.grad(out.loss, z)
    # beta * mean (z - e_c)^2 over the 4 elements: gradient beta * 2 (z - e_c) / 4, with e_c
    # the codebook before this step's EMA update.
    e_c = grid([[0.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(commitment, 0.5 * 2 * (z.detach() - e_c) / 4)


def test_ema_moves_used_codes_toward_their_vectors_and_eval_leaves_the_codebook():
    decay, eps = 0.9, 1e-5
    start = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    vq = vq_with_codebook(start, decay=decay, eps=eps).train()
    z = grid([[1.0, 0.0], [0.0, 1.0], [6.0, 5.0]])  # two vectors on code 0, one on code 1
    out = vq(z)
    assert out.codes.flatten().tolist() == [0, 0, 1]
    # The EMA by hand: N = 0.9 * 1 + 0.1 * n, m = 0.9 * e + 0.1 * (sum of assigned vectors).
    n = torch.tensor([2.0, 1.0, 0.0])
    sums = torch.tensor([[1.0, 1.0], [6.0, 5.0], [0.0, 0.0]])
    cluster = decay * 1.0 + (1 - decay) * n
    m = decay * start + (1 - decay) * sums
    smoothed = (cluster + eps) / (cluster.sum() + 3 * eps) * cluster.sum()
    assert torch.allclose(vq.codebook, m / smoothed[:, None], atol=1e-6)
    # Used codes moved toward the mean of their vectors; the unused one stayed (up to smoothing).
    means = torch.tensor([[0.5, 0.5], [6.0, 5.0]])
    for k in (0, 1):
        assert (vq.codebook[k] - means[k]).norm() < (start[k] - means[k]).norm()
    assert torch.allclose(vq.codebook[2], start[2], atol=1e-3)
    assert vq.unused_steps.tolist() == [0, 0, 1]

    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(z)
    vq.codes(z)
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_codes_and_encode_change_no_state_in_training_mode():
    vq = vq_with_codebook(torch.tensor([[0.0, 0.0], [1.0, 1.0]])).train()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    assert vq.codes(grid([[0.9, 0.8], [0.1, 0.0]])).flatten().tolist() == [1, 0]
    assert all(torch.equal(v, before[k]) for k, v in vq.state_dict().items())


def test_dead_codes_restart_at_current_encoder_outputs():
    far = torch.tensor([[0.0, 0.0], [1.0, 1.0], [100.0, 100.0]])
    vq = vq_with_codebook(far, dead_after=2).train()
    z = grid([[0.1, 0.0], [0.9, 1.1], [0.0, 0.2], [1.0, 0.8]])
    vq(z)
    assert vq.unused_steps.tolist() == [0, 0, 1]
    assert torch.allclose(vq.codebook[2], far[2], atol=1e-2)
    vq(z)  # unused for two steps: code 2 restarts at one of this batch's vectors
    rows = z[0, :, 0, :].t()
    assert any(torch.equal(vq.codebook[2], row) for row in rows)
    assert vq.unused_steps[2] == 0 and vq.cluster_size[2] == 1.0
    assert torch.equal(vq.embed_sum[2], vq.codebook[2])


def test_first_training_batch_initialises_the_codebook():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=4, dim=2).train()
    z = grid([[float(i), float(-i)] for i in range(10)])
    vq(z)
    rows = [row.tolist() for row in z[0, :, 0, :].t()]
    # Each entry began as a distinct row of the batch, then took one EMA step.
    assert bool(vq.initialised)
    assert len({tuple(round(v) for v in e.tolist()) for e in vq.codebook}) == 4
    for entry in vq.codebook:
        assert min(math.dist(entry.tolist(), row) for row in rows) < 1.0


def test_usage_and_perplexity_of_a_known_assignment():
    codes = torch.tensor([[[0, 0], [1, 1]]])  # two codes of four, equally often
    counts = code_counts(codes, 4)
    assert counts.tolist() == [2, 2, 0, 0]
    assert usage(counts) == 0.5
    assert perplexity(counts) == pytest.approx(2.0)
    assert perplexity(code_counts(torch.arange(8), 8)) == pytest.approx(8.0)
    assert perplexity(code_counts(torch.zeros(5, dtype=torch.long), 8)) == pytest.approx(1.0)
    skewed = torch.tensor([3, 1])  # entropy -(3/4 log 3/4 + 1/4 log 1/4)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert perplexity(skewed) == pytest.approx(expected)
    vq = vq_with_codebook(torch.tensor([[0.0], [1.0], [2.0], [3.0]])).eval()
    stats = vq(grid([[0.1], [0.0], [1.1], [0.9]])).stats
    assert stats["usage"] == 0.5 and stats["perplexity"] == pytest.approx(2.0)


def test_embed_looks_up_the_codebook_and_refuses_bad_codes():
    vq = vq_with_codebook(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    z_q = vq.embed(torch.tensor([[[2, 0]]]))  # (1, 1, 2) -> (1, 2, 1, 2)
    assert z_q.shape == (1, 2, 1, 2) and z_q.is_contiguous()
    assert z_q[0, :, 0, 0].tolist() == [4.0, 5.0] and z_q[0, :, 0, 1].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        vq.embed(torch.tensor([[[3]]]))
    with pytest.raises(ValueError, match="integers"):
        vq.embed(torch.zeros(1, 1, 1))
    with pytest.raises(ValueError, match=r"\(B, 2, h, w\)"):
        vq(torch.zeros(1, 3, 2, 2))


def test_gumbel_relaxes_in_training_and_takes_the_argmax_in_eval():
    torch.manual_seed(0)
    gumbel = GumbelQuantizer(codebook_size=8, dim=4, kl_weight=1.0)
    z = torch.randn(2, 4, 3, 3)
    gumbel.eval()
    out = gumbel(z)
    logits = gumbel.proj(z)
    assert torch.equal(out.codes, logits.argmax(1))
    assert torch.equal(out.codes, gumbel.codes(z))
    assert torch.allclose(out.z_q, gumbel.embed(out.codes))
    gumbel.train()
    gumbel.temperature = 1 / 16
    relaxed = gumbel(z)
    assert relaxed.z_q.requires_grad and relaxed.z_q.shape == (2, 4, 3, 3)
    # KL(q || uniform) is 0 for uniform logits and log K for a one-hot q.
    with torch.no_grad():
        gumbel.proj.weight.zero_()
        gumbel.proj.bias.zero_()
    assert gumbel(z).loss.item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        gumbel.proj.bias.copy_(torch.tensor([100.0] + [0.0] * 7))
    assert gumbel(z).loss.item() == pytest.approx(math.log(8), abs=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        gumbel.temperature = 0.0


@pytest.mark.parametrize(("blocks", "side"), [((8, 16, 16), 16), ((8, 8, 16, 16), 8)])
def test_tokenizer_grid_and_round_trip_shapes(blocks, side):
    tokenizer = ImageTokenizer(replace(TINY, block_channels=blocks))
    tokenizer.eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        codes = tokenizer.encode(x)
        image = tokenizer.decode_codes(codes)
    assert codes.shape == (2, side, side) and codes.dtype == torch.long
    assert image.shape == x.shape and image.min() >= -1 and image.max() <= 1
    assert torch.equal(tokenizer.round_trip(x), image)
    with pytest.raises(ValueError, match="this tokenizer"):
        tokenizer.encode(torch.zeros(1, 3, 30, 30))


def test_replicate_padding_gives_a_blank_image_one_code_and_zeros_padding_does_not():
    """Zero padding tells every position its distance from the border: a blank image comes out
    in rings of codes. Replicate padding carries no position, so a constant image is one code
    and decodes to a constant image; the weights' names are the same in both modes."""
    torch.manual_seed(0)
    x = torch.full((1, 3, 64, 64), 0.4)
    distinct = {}
    for mode in ("zeros", "replicate"):
        torch.manual_seed(0)
        tokenizer = ImageTokenizer(replace(TINY, padding_mode=mode))
        tokenizer.train()
        tokenizer(torch.rand(4, 3, 64, 64) * 2 - 1)  # the codebook starts at encoder outputs
        tokenizer.eval()
        with torch.no_grad():
            codes = tokenizer.encode(x)
            image = tokenizer.decode_codes(codes)
        distinct[mode] = codes.unique().numel()
        if mode == "replicate":
            assert (image - image[..., :1, :1]).abs().max() < 1e-5 * image.abs().max()
        else:
            keys = set(tokenizer.state_dict())
    assert distinct["replicate"] == 1 and distinct["zeros"] > 1
    assert keys == set(ImageTokenizer(replace(TINY, padding_mode="replicate")).state_dict())
    with pytest.raises(ValueError, match="padding_mode"):
        replace(TINY, padding_mode="circular")


@pytest.mark.parametrize(
    "changes",
    [
        {"quantizer": "lookup"},
        {"codebook_size": 1},
        {"embed_dim": 0},
        {"block_channels": (8, 12)},  # 12 not divisible by 8 groups
        {"beta": float("nan")},
    ],
)
def test_bad_tokenizer_config_raises(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        replace(TINY, **changes)
