"""Fixed-size chunks: every row is what a ``rows``-row call gives it, and ``wide`` calls are used
only after they are checked to give the same bits."""

import pytest
import torch

from atelier.pipelines.fixed_batch import fixed_batch


def recorded(fn):
    """``fn`` and the row counts it is called with."""
    sizes: list[int] = []

    def run(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return fn(x)

    return run, sizes


def by_rows(x: torch.Tensor) -> torch.Tensor:
    """Row-independent arithmetic, as a kernel that blocks the same at any batch size."""
    return x * 3 + 1


def by_batch(x: torch.Tensor) -> torch.Tensor:
    """Each row's result depends on the call's row count, as a kernel blocked by batch size."""
    return x + 1e-3 * x.shape[0]


def test_one_image_is_one_call_of_rows():
    fn, sizes = recorded(by_rows)
    x = torch.randn(2, 3)
    assert torch.equal(fixed_batch(fn, 2, wide=(4, 8))(x), by_rows(x))
    assert sizes == [2]


def test_a_wide_size_is_checked_on_its_first_full_call_then_used():
    fn, sizes = recorded(by_rows)
    run = fixed_batch(fn, 2, wide=(4, 8))
    x = torch.randn(22, 3)
    assert torch.equal(run(x), by_rows(x))
    # 8 rows in 2-row calls and at once (the check), 8 at once, the last 6 padded to 8.
    assert sizes == [2, 2, 2, 2, 8, 8, 8]
    sizes.clear()
    run(x[:3])  # the same run: 8 passed its check; 4 is never first tried on a padded call
    assert sizes == [8]


def test_a_kernel_blocked_by_batch_size_stays_at_rows():
    fn, sizes = recorded(by_batch)
    x = torch.randn(20, 3)
    out = fixed_batch(fn, 2, wide=(4, 8))(x)
    assert torch.equal(out, x + 2e-3)  # every row as a 2-row call gives it
    # 8 checked and refused, then 4 checked and refused, then 2-row calls only.
    assert sizes == [2, 2, 2, 2, 8] + [2, 2, 4] + [2] * 4
    single = fixed_batch(by_batch, 2, wide=(4, 8))(x[5:6])
    assert torch.equal(single, out[5:6])  # padded to 2, as in the batch


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="rows must be at least 1"):
        fixed_batch(by_rows, 0)
    with pytest.raises(ValueError, match="wide sizes must exceed rows"):
        fixed_batch(by_rows, 4, wide=(4, 8))
