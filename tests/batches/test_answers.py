"""Batch lines' answers written in groups: a line keeps the first answer stored for it, each call
learns whether its answer was the one written, and the lines' states are read by the index."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import insert, select, text

from dizuo.batches.answers import AnswerWriter
from dizuo.batches.tables import Batch, BatchLine
from dizuo.store import Database, utcnow


def lines(db: Database, count: int) -> str:
    """A batch of *count* lines waiting for their answers; its id."""
    batch_id = f"batch_{uuid.uuid4().hex[:12]}"
    now = utcnow()
    with db.session() as session:
        session.add(
            Batch(
                id=batch_id, org_id="org", key_id="key", endpoint="/v1/chat/completions",
                input_file_id="file-x", completion_window="24h", status="in_progress", total=count,
                data_class="general", created_at=now, expires_at=now + dt.timedelta(hours=24),
            )
        )  # fmt: skip
        session.execute(
            insert(BatchLine),
            [
                {"batch_id": batch_id, "line": n, "custom_id": f"r{n}", "offset": 0, "length": 1, "worst": 1}
                for n in range(count)
            ],
        )
    return batch_id


def stored(db: Database, batch_id: str) -> dict[int, tuple[int | None, bytes | None, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(BatchLine.line, BatchLine.status_code, BatchLine.body, BatchLine.request_id).where(
                BatchLine.batch_id == batch_id
            )
        )
        return {row.line: (row.status_code, row.body, row.request_id) for row in rows}


async def test_a_group_of_answers_is_written_and_a_line_keeps_the_answer_it_had(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    writer = AnswerWriter(db)
    try:
        batch_id = lines(db, 40)
        assert await writer.write(batch_id, 7, 200, b'{"first": true}', "req-first")
        # 40 calls at once: one group or a few; line 7 is answered already, the others are not.
        written = await asyncio.gather(
            *(writer.write(batch_id, n, 200, f'{{"n": {n}}}'.encode(), f"req-{n}") for n in range(40))
        )
    finally:
        writer.close()
    assert written == [n != 7 for n in range(40)]
    rows = stored(db, batch_id)
    assert rows[7] == (200, b'{"first": true}', "req-first")
    assert all(rows[n] == (200, f'{{"n": {n}}}'.encode(), f"req-{n}") for n in range(40) if n != 7)
    with db.session() as session:
        answered_at = session.scalars(select(BatchLine.answered_at).where(BatchLine.batch_id == batch_id))
        assert all(moment is not None for moment in answered_at)
    db.dispose()


async def test_lines_waiting_are_counted_from_the_index_not_the_rows(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    if not db.is_sqlite:
        db.dispose()
        return  # the plan is SQLite's; PostgreSQL chooses by its statistics
    batch_id = lines(db, 5)
    with db.engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT count(*) FROM batch_lines "
                    "WHERE batch_id = :b AND status_code IS NULL"
                ),
                {"b": batch_id},
            )
        )
    db.dispose()
    assert "COVERING INDEX ix_batch_lines_batch_id_status_code_line" in plan
