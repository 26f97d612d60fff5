"""shapes-bench v1: its coverage, its reproducibility, and the judge's floor on it."""

from collections import Counter

import pytest

from atelier.shapes.bench import PER_PART, build_suite, load_suite
from atelier.shapes.floor import measure_floor
from atelier.shapes.parse import parse_prompt
from atelier.shapes.world import CATEGORIES


@pytest.fixture(scope="module")
def suite():
    return load_suite()


def test_suite_covers_every_category_and_split(suite):
    assert len(suite) >= 300
    counts = Counter((bp.category, bp.split) for bp in suite)
    for category in CATEGORIES:
        for split, n in PER_PART.items():
            assert counts[(category, split)] == n
    assert len({bp.prompt for bp in suite}) == len(suite)
    assert len({bp.id for bp in suite}) == len(suite)


def test_split_is_exactly_the_held_out_rule(suite):
    for bp in suite:
        assert bp.spec.held_out == (bp.split == "held_out"), bp.prompt


def test_prompts_parse_to_their_specs(suite):
    for bp in suite:
        assert parse_prompt(bp.prompt) == bp.spec, bp.prompt


def test_category_semantics(suite):
    for bp in suite:
        objs, rels = bp.spec.objects, bp.spec.relations
        if bp.category in ("single_object", "position"):
            assert len(objs) == 1 and (objs[0].cell is not None) == (bp.category == "position")
        elif bp.category == "size":
            assert all(o.size for o in objs)
        elif bp.category == "relation":
            assert len(objs) == 2 and len(rels) == 1
        elif bp.category == "counting":
            assert max(Counter((o.color, o.shape) for o in objs).values()) >= 2
        elif bp.category == "color_attribution":
            a, b = objs
            assert a.color != b.color and a.shape != b.shape


def test_committed_suite_regenerates_bit_for_bit(suite):
    assert [bp.to_json() for bp in build_suite()] == [bp.to_json() for bp in suite]


def test_judge_floor_at_least_99_percent(suite):
    """Fresh renders of every suite spec, at 64 and 128 px, clean and with mild blur and noise."""
    rows = measure_floor(suite, sizes=(64, 128), conditions=("clean", "degraded"), seed=7)
    assert len(rows) == 4
    for row in rows:
        assert row.total == len(suite)
        assert row.rate >= 0.99, (row.size, row.condition, row.failures[:5])
