"""Multi-row statements in a few sizes (:func:`dizuo.store.batches.row_groups`)."""

from __future__ import annotations

import pytest

from dizuo.store.batches import row_groups


@pytest.mark.parametrize("count", [0, 1, 2, 3, 100, 255, 256, 257, 600])
def test_groups_cover_every_row_once_in_powers_of_two_largest_first(count: int) -> None:
    groups = list(row_groups(count, 256))
    covered = [row for start, size in groups for row in range(start, start + size)]
    assert covered == list(range(count))
    sizes = [size for _, size in groups]
    assert all(size & (size - 1) == 0 and size <= 256 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_a_count_makes_as_many_statements_as_its_bits_below_the_largest() -> None:
    assert [size for _, size in row_groups(100, 256)] == [64, 32, 4]
    assert [size for _, size in row_groups(600, 256)] == [256, 256, 64, 16, 8]
