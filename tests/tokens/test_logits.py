"""Logits to tokens: top-k and top-p against hand-worked and brute-force references, guidance,
and Gumbel-max sampling (its frequencies, its generators, greedy at temperature 0)."""

import math

import pytest
import torch

from atelier.tokens.logits import (
    guide,
    gumbel_noise,
    sample_logits,
    top_k_filter,
    top_p_filter,
    with_guidance,
)
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions

INF = math.inf


def test_top_k_keeps_the_k_largest_and_ties_with_the_kth():
    logits = torch.tensor([[1.0, 4.0, 2.0, 3.0], [0.0, 5.0, 5.0, -1.0]])
    assert torch.equal(top_k_filter(logits, 2), torch.tensor([[-INF, 4.0, -INF, 3.0],
                                                              [-INF, 5.0, 5.0, -INF]]))  # fmt: skip
    assert torch.equal(top_k_filter(logits, 1)[1], torch.tensor([-INF, 5.0, 5.0, -INF]))
    assert torch.equal(top_k_filter(logits, 0), logits)
    assert torch.equal(top_k_filter(logits, 4), logits)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        top_k_filter(logits, -1)


def test_top_p_keeps_the_smallest_set_reaching_p():
    # Probabilities 0.5, 0.25, 0.125, 0.125 in a shuffled order.
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25])
    logits = probs.log()[None]
    kept = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [False, True, False, False]  # the most likely alone reaches 0.5
    assert kept(0.6) == [False, True, False, True]
    assert kept(0.75) == [False, True, False, True]
    assert kept(0.8) == [True, True, False, True]  # of the tied 0.125s, the first suffices
    assert kept(0.9) == [True, True, True, True]
    assert kept(0.01) == [False, True, False, False]  # never empty
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(logits, 0.0)


def test_top_p_matches_a_brute_force_reference():
    torch.manual_seed(0)
    logits = torch.randn(50, 12) * 2
    for p in (0.3, 0.7, 0.9, 0.99):
        out = top_p_filter(logits, p)
        for row, filtered in zip(logits, out):
            probs = row.softmax(-1)
            order = probs.argsort(descending=True).tolist()
            keep, mass = set(), 0.0
            for i in order:  # the smallest prefix of the sorted codes with mass >= p
                keep.add(i)
                mass += probs[i].item()
                if mass >= p:
                    break
            assert {i for i in range(12) if math.isfinite(filtered[i])} == keep
            assert torch.equal(filtered[list(keep)], row[list(keep)])  # kept logits untouched


def test_guidance_on_logits():
    cond, uncond = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[1.0, 1.0, 1.0]])
    assert torch.equal(guide(cond, uncond, 1.0), cond)
    assert torch.equal(guide(cond, uncond, 0.0), uncond)
    assert torch.equal(guide(cond, uncond, 3.0), torch.tensor([[4.0, -2.0, -5.0]]))
    seen = []

    def both_halves(tokens):
        seen.append(tokens.clone())
        return torch.cat([cond, uncond]).expand(len(tokens), 3) + tokens.float()

    guided = with_guidance(both_halves, 3.0)
    tokens = torch.tensor([[7]])
    assert torch.equal(guided(tokens), torch.tensor([[11.0, 5.0, 2.0]]))
    assert torch.equal(seen[0], torch.tensor([[7], [7]]))  # each row given to both halves


def test_gumbel_max_draws_from_the_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0]).log_softmax(-1)
    generators = [torch.Generator().manual_seed(i) for i in range(4000)]
    codes = sample_logits(logits.expand(4000, 3), generators)
    freq = torch.bincount(codes, minlength=3).float() / 4000
    assert torch.allclose(freq, logits.softmax(-1), atol=0.025), freq
    # At temperature 0.5 the distribution is softmax(2 l), sharper.
    cold = sample_logits(logits.expand(4000, 3), generators, temperature=0.5)
    freq = torch.bincount(cold, minlength=3).float() / 4000
    assert torch.allclose(freq, (2 * logits).softmax(-1), atol=0.025), freq


def test_each_row_draws_with_its_own_generator_and_filters_hold():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 20)

    def draw(rows, **kw):
        return sample_logits(logits[rows], [torch.Generator().manual_seed(s) for s in rows], **kw)

    together = draw([0, 1, 2], top_k=5)
    for row in range(3):
        assert torch.equal(draw([row], top_k=5)[0], together[row])
    allowed = logits.topk(5, dim=-1).indices
    assert (allowed == together[..., None]).any(-1).all()  # only top-5 codes drawn
    assert torch.equal(sample_logits(logits, [], temperature=0), logits.argmax(-1))
    with pytest.raises(ValueError, match="one per row"):
        gumbel_noise((3, 4), [torch.Generator()], "cpu")


def test_options_refuse_bad_values():
    for bad, problem in (({"top_k": -1}, "top_k"), ({"top_p": 0.0}, "top_p"),
                         ({"temperature": -1.0}, "temperature"),
                         ({"guidance": math.nan}, "guidance")):  # fmt: skip
        with pytest.raises(ValueError, match=problem):
            AutoregressiveOptions(**bad)
    with pytest.raises(ValueError, match="unknown mask schedule 'zigzag'; valid: cosine"):
        MaskedOptions(schedule="zigzag")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        MaskedOptions(steps=0)
    assert AutoregressiveOptions().label() == "t1.0-k0-p1.0-g3.0"
    assert MaskedOptions().label() == "cosine-12-t1.0-g3.0"
