"""Tables of the Files and Batch APIs: files an organization uploaded (their bytes live in the file
store), batches, and each line of a batch with where it sits in its input file and its answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["Batch", "BatchLine", "StoredFile"]


class StoredFile(Base):
    """A file of an organization: ``purpose`` ``batch`` (uploaded) or ``batch_output`` (a batch's
    output or error file, written by the platform)."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # file-<hex>
    org_id: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """A batch: its input file's requests sent through the gateway by a compute job's worker.

    ``status`` follows OpenAI's: ``validating → in_progress → finalizing → completed | failed |
    expired``, or ``cancelling → cancelled``. Money in micro-yuan: ``held`` is what the batch holds for
    the lines not yet sent (its worst case at batch prices, less what it handed to sent lines).
    """

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_org_id_created_at", "org_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # batch_<hex>
    org_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))  # the key that created it
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(256))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(16))
    batch_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(16))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(32))  # the compute job running it now
    jobs: Mapped[int] = mapped_column(Integer, default=0)  # compute jobs run for it so far
    data_class: Mapped[str] = mapped_column(String(16))
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    held_own: Mapped[int] = mapped_column(BigInteger, default=0)
    held_vouchers: Mapped[list[list[Any]]] = mapped_column(JSON, default=list)
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    in_progress_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finalizing_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelling_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class BatchLine(Base):
    """One request of a batch: where it sits in the input file, and once answered, the answer.

    ``status_code`` is None while the line waits; the gateway writes an answer the line was charged
    for (200, or a refusal of the answer) before the call's usage record, and a worker writes a
    refusal that cost nothing (402, 429 after its retries, no deployment …). A line with an answer is
    never sent upstream again.
    """

    __tablename__ = "batch_lines"
    # Lines by state (answered or not, with what status) without reading the rows, whose answers
    # make them large: the worker's pages of lines waiting, and the counts every poll shows.
    __table_args__ = (Index("ix_batch_lines_batch_id_status_code_line", "batch_id", "status_code", "line"),)

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based, in the input file
    custom_id: Mapped[str] = mapped_column(Text)
    offset: Mapped[int] = mapped_column(BigInteger)  # of the line's first byte in the input file
    length: Mapped[int] = mapped_column(Integer)
    worst: Mapped[int] = mapped_column(BigInteger)  # micro-yuan it may cost at most, at batch prices
    handed: Mapped[bool] = mapped_column(Boolean, default=False)  # its worst case left the batch's hold
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    request_id: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
