"""Knowledge bases, their documents and chunks; one schema on SQLite and PostgreSQL.

A chunk keeps its jieba terms (so an index is rebuilt without segmenting again) and its vector as
little-endian float32 bytes. Each change to a knowledge base bumps its ``version``: a replica that
holds an index of an older version rebuilds it before answering.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.accounts.tables import Organization
from dizuo.store import Base, utcnow

__all__ = ["KbChunk", "KbDocument", "KbStagedVector", "KnowledgeBase"]


class KnowledgeBase(Base):
    __tablename__ = "kb_bases"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey(Organization.id, ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # The embedding model alias (called through the gateway) and the size of its vectors.
    embedding_model: Mapped[str] = mapped_column(String(256))
    dimensions: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbDocument(Base):
    __tablename__ = "kb_documents"
    __table_args__ = (UniqueConstraint("kb_id", "source"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_id: Mapped[str] = mapped_column(ForeignKey(KnowledgeBase.id, ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(512))  # the file name it was added as
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)  # bytes of the file
    characters: Mapped[int] = mapped_column(Integer)  # characters of text indexed
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbChunk(Base):
    __tablename__ = "kb_chunks"

    # 64-bit on PostgreSQL; SQLite's rowid alias must be spelled INTEGER.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kb_id: Mapped[str] = mapped_column(ForeignKey(KnowledgeBase.id, ondelete="CASCADE"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey(KbDocument.id, ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # order within its document
    text: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[str]] = mapped_column(JSON)
    clause: Mapped[str | None] = mapped_column(String(64))
    page: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # text | table
    terms: Mapped[str] = mapped_column(Text)  # jieba terms joined by spaces
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian


class KbStagedVector(Base):
    """A chunk's vector from a re-embedding job, kept aside until the job commits them all at once
    (then the knowledge base answers with the new vectors and model) or ends without (then dropped)."""

    __tablename__ = "kb_staged_vectors"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chunk_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey(KbChunk.id, ondelete="CASCADE"),
        primary_key=True,
    )
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian
