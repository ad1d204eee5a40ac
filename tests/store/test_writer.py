"""The group writer every background writer of the data plane runs on: items queued by calls reach
the sink in groups, nothing is lost on a failing write or at stop, and what cannot be written at
stop is handed over rather than dropped silently."""

from __future__ import annotations

import threading
import time

from dizuo.store.writer import GroupWriter


def test_queued_items_reach_the_sink_in_groups_of_at_most_most_and_in_order() -> None:
    groups: list[list[int]] = []
    writer: GroupWriter[int] = GroupWriter(
        "test", lambda g: groups.append(list(g)) or [], most=4, gather=0.05
    )
    writer.start()
    for n in range(10):
        writer.put(n)
    writer.stop()
    assert [n for group in groups for n in group] == list(range(10))
    assert all(len(group) <= 4 for group in groups)
    assert len(groups) == 3  # gathered: 4 + 4 + 2, not one write each


def test_what_the_sink_could_not_write_is_tried_again_and_nothing_is_written_twice() -> None:
    written: list[int] = []
    failures = iter([True, False])  # the first write fails half its group

    def sink(group: list[int]) -> list[int]:
        if next(failures, False):
            written.extend(group[:1])
            return group[1:]
        written.extend(group)
        return []

    writer: GroupWriter[int] = GroupWriter("test", sink, most=10, gather=0.05, retry=0.05)
    writer.start()
    for n in range(3):
        writer.put(n)
    deadline = time.monotonic() + 5
    while len(written) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.stop()
    assert written == [0, 1, 2]


def test_stop_writes_what_is_queued_and_hands_over_what_still_fails() -> None:
    left: list[int] = []
    writer: GroupWriter[int] = GroupWriter(
        "test", lambda g: list(g), most=10, gather=10, retry=10, abandon=left.extend
    )
    writer.start()
    writer.put(1)
    writer.put(2)
    started = time.monotonic()
    writer.stop()
    assert time.monotonic() - started < 5  # the stop cuts the gathering and the retry's wait short
    assert left == [1, 2]
    assert not writer.running


def test_a_sink_that_raises_keeps_its_group() -> None:
    calls: list[list[int]] = []

    def sink(group: list[int]) -> list[int]:
        calls.append(list(group))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return []

    writer: GroupWriter[int] = GroupWriter("test", sink, most=10, retry=0.01)
    writer.start()
    writer.put(7)
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.stop()
    assert calls == [[7], [7]]


def test_the_tick_runs_between_groups_and_while_idle() -> None:
    ticks = threading.Semaphore(0)
    writer: GroupWriter[int] = GroupWriter("test", lambda g: [], most=10, every=0.02, tick=ticks.release)
    writer.start()
    try:
        assert all(ticks.acquire(timeout=2) for _ in range(3))
    finally:
        writer.stop()
