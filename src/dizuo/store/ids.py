"""Ids for the rows the hot path writes: time-ordered, so that each lands at the end of its index."""

from __future__ import annotations

import uuid_utils

__all__ = ["ordered_id"]


def ordered_id() -> str:
    """32 hex digits of a UUIDv7 (RFC 9562): milliseconds since the epoch, then a counter that keeps
    the ids of one millisecond in order, then random bits.

    A random id (uuid4) puts every new row of a table's index on a random page, so each commit writes
    pages all over it; an id that grows with time appends (measured on SQLite: 114 -> 100 µs a
    charge at 80,000 rows, and the gap grows with the table). The random part keeps ids unguessable
    enough to name a call, not to authorize anything."""
    return uuid_utils.uuid7().hex
