"""MaskGIT decoding: the schedules, a step never changes a kept token, the number of tokens kept
per step follows the schedule, every token is filled at the end, and a few unknown tokens (one,
when inpainting a single token) are decided in as many steps."""

import math

import pytest
import torch

from atelier.tokens.masked import (
    cosine_schedule,
    decode_step,
    get_schedule,
    linear_schedule,
    masked_decode,
)

MASK = 16


def test_schedules_run_from_all_masked_to_none():
    for schedule in (
        cosine_schedule,
        linear_schedule,
        get_schedule("square"),
        get_schedule("convex"),
    ):
        assert schedule(0.0) == 1.0 and schedule(1.0) == pytest.approx(0.0)
        values = [schedule(r / 10) for r in range(11)]
        assert all(a > b for a, b in zip(values, values[1:]))
    assert cosine_schedule(0.5) == pytest.approx(math.sqrt(0.5))
    assert get_schedule("cosine") is cosine_schedule
    # Convex: three quarters of the tokens decided by half way, where the cosine has 29%.
    assert get_schedule("convex")(0.5) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_a_step_never_changes_a_kept_token(seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, MASK, (4, 30), generator=g)
    tokens[torch.rand(4, 30, generator=g) < 0.6] = MASK
    logits = torch.randn(4, 30, MASK, generator=g) * 3
    unknown = tokens == MASK
    # Ask for more remasking than there are unknown tokens: it is clamped to them.
    for remask in (0, 5, 30):
        out = decode_step(logits, tokens, mask_id=MASK, remask=torch.full((4,), remask),
                          generators=[torch.Generator().manual_seed(i) for i in range(4)],
                          temperature=1.0, choice_temperature=4.5)  # fmt: skip
        assert torch.equal(out[~unknown], tokens[~unknown])
        assert ((out == MASK).sum(1) == torch.minimum(torch.tensor(remask), unknown.sum(1))).all()
        assert (out[unknown & (out != MASK)] < MASK).all()


def test_without_noise_the_most_confident_are_kept():
    logits = torch.full((1, 4, 3), -10.0)
    for position, (code, strength) in enumerate([(0, 1.0), (1, 9.0), (2, 3.0), (0, 6.0)]):
        logits[0, position, code] = strength
    out = decode_step(logits, torch.full((1, 4), 3), mask_id=3, remask=torch.tensor([2]),
                      generators=[torch.Generator()], temperature=0.0,
                      choice_temperature=0.0)  # fmt: skip
    assert out.tolist() == [[3, 1, 3, 0]]


def test_decoding_fills_everything_keeping_tokens_as_scheduled():
    n, steps = 64, 8
    torch.manual_seed(0)
    bias = torch.randn(n, MASK)
    history = []

    def logits_fn(tokens):
        history.append(tokens.clone())
        return bias.expand(len(tokens), n, MASK)

    start = torch.full((2, n), MASK)
    start[1, :10] = 5  # a row with some tokens known from the start (inpainting)
    out = masked_decode(
        logits_fn,
        start,
        mask_id=MASK,
        steps=steps,
        generators=[torch.Generator().manual_seed(i) for i in range(2)],
    )
    assert len(history) == steps and (out != MASK).all() and (out[1, :10] == 5).all()
    history.append(out)
    for s in range(1, steps):
        masked = (history[s] == MASK).sum(1)
        expected = [max(1, math.floor(u * cosine_schedule(s / steps))) for u in (n, n - 10)]
        assert masked.tolist() == expected
        before, after = history[s - 1], history[s]
        assert torch.equal(after[before != MASK], before[before != MASK])


@pytest.mark.parametrize("unknown, decided_by", [(1, 1), (2, 2), (3, 3)])
def test_a_few_unknown_tokens_are_decided_early_and_never_changed_after(unknown, decided_by):
    # Inpainting a small region: of 16 tokens only the last ``unknown`` are masked. The schedule
    # counts those alone and decides at least one per step, so with 12 steps they are all
    # decided within ``unknown`` steps, and the steps left change nothing.
    n, steps = 16, 12
    known = torch.arange(n) % MASK
    start = known.clone()[None]
    start[0, n - unknown :] = MASK
    seen = []

    def logits_fn(tokens):
        return torch.randn(len(tokens), n, MASK, generator=torch.Generator().manual_seed(0))

    out = masked_decode(logits_fn, start, mask_id=MASK, steps=steps,
                        generators=[torch.Generator().manual_seed(1)],
                        callback=lambda info: seen.append(info.tokens.clone()))  # fmt: skip
    assert len(seen) == steps
    assert (out != MASK).all() and torch.equal(out[0, : n - unknown], known[: n - unknown])
    assert all(torch.equal(t, out) for t in seen[decided_by - 1 :])
    assert [int((t == MASK).sum()) for t in seen[:decided_by]] == list(range(unknown - 1, -1, -1))


def test_rows_with_nothing_unknown_are_left_as_they_are():
    tokens = torch.tensor([[1, 2, 3, 4], [MASK, MASK, MASK, MASK]])
    out = masked_decode(lambda t: torch.randn(len(t), 4, MASK), tokens, mask_id=MASK, steps=3,
                        generators=[torch.Generator(), torch.Generator()])  # fmt: skip
    assert out[0].tolist() == [1, 2, 3, 4] and (out[1] != MASK).all()
