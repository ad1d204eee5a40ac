"""The ids the hot path writes grow with time, so each new row lands at the end of its index."""

from __future__ import annotations

from dizuo.store import ordered_id


def test_ids_made_one_after_another_sort_in_the_order_they_were_made() -> None:
    made = [ordered_id() for _ in range(10_000)]  # many within one millisecond: the counter orders them
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)
