"""Re-embedding a knowledge base, with another embedding model or the same one anew, by a worker
outside the server (a compute job on a pool): the knowledge base keeps answering from its current
vectors the whole time and moves to the new ones in one transaction.

The worker asks for the chunks it has not embedded yet (:meth:`Reindex.pending`: each chunk's id and
the exact text to embed, the one the knowledge base embedded when the document was added), embeds
them through the gateway and sends the vectors back (:meth:`Reindex.stage`); they are kept aside,
per job. When nothing is pending, :meth:`Reindex.commit` swaps every chunk's vector and the
knowledge base's model and dimensions at once, and bumps its version, so every replica rebuilds its
index. A document added meanwhile makes new chunks pending: the commit refuses (409
``kb_reindex_incomplete``) until they are embedded too, so an index never mixes two models. Vectors
of a job that ends without committing are dropped (:meth:`Reindex.discard`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from dizuo.errors import DizuoError, InvalidRequest, invalid_param
from dizuo.kb.chunking import index_text
from dizuo.kb.script import simplified
from dizuo.kb.service import KbNotFound
from dizuo.kb.tables import KbChunk, KbStagedVector, KnowledgeBase
from dizuo.lazy import module
from dizuo.store import Database, utcnow

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["MAX_PAGE", "KbReindexIncomplete", "Reindex"]

MAX_PAGE = 2048  # chunks a page or a staging call carries at most


class KbReindexIncomplete(DizuoError):
    status = 409
    type = "invalid_request_error"
    default_code = "kb_reindex_incomplete"


def _vector(text: object) -> np.ndarray:
    """A vector from its base64 little-endian float32 bytes; refuses anything else."""
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_param(
            "embedding", "不是 base64 编码的 float32 向量", "is not a float32 vector in base64"
        ) from None
    if not data or len(data) % 4:
        raise invalid_param(
            "embedding", "长度不是 4 字节的整数倍", "its length is not a whole number of float32s"
        )
    vector = np.frombuffer(data, dtype="<f4")
    if not np.isfinite(vector).all():
        raise invalid_param("embedding", "含有 NaN 或无穷大", "holds NaN or infinity")
    return vector


class Reindex:
    """The staging of new vectors for knowledge bases, per job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _unstaged(kb_id: str, job_id: str) -> Any:
        staged = select(KbStagedVector.chunk_id).where(
            KbStagedVector.job_id == job_id, KbStagedVector.chunk_id == KbChunk.id
        )
        return (KbChunk.kb_id == kb_id, ~staged.exists())

    def pending(self, kb_id: str, job_id: str, limit: int = 512) -> dict[str, Any]:
        """Up to *limit* chunks *job_id* has not embedded yet, by id, with the text to embed; and how
        many are pending of how many."""
        limit = max(1, min(limit, MAX_PAGE))
        where = self._unstaged(kb_id, job_id)
        with self.db.session() as session:
            rows = session.execute(
                select(KbChunk.id, KbChunk.heading_path, KbChunk.text)
                .where(*where)
                .order_by(KbChunk.id)
                .limit(limit)
            ).all()
            pending = session.scalar(select(func.count()).select_from(KbChunk).where(*where)) or 0
            total = session.scalar(select(func.count()).select_from(KbChunk).where(KbChunk.kb_id == kb_id))
        return {
            "object": "list",
            "data": [
                {"id": int(id_), "text": simplified(index_text(path or (), text))} for id_, path, text in rows
            ],
            "pending": int(pending),
            "total": int(total or 0),
        }

    def stage(self, kb_id: str, job_id: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Keep the vectors *rows* (``{"id", "embedding"}``, base64 float32) for *job_id*. Every vector of
        a job has the same width; a chunk deleted since it was handed out is skipped."""
        if not rows:
            raise InvalidRequest("missing_param", param="data")
        if len(rows) > MAX_PAGE:
            raise invalid_param("data", f"一次最多 {MAX_PAGE} 个向量", f"at most {MAX_PAGE} vectors a call")
        vectors: dict[int, bytes] = {}
        widths = set()
        for row in rows:
            chunk_id = row.get("id") if isinstance(row, dict) else None
            if not isinstance(chunk_id, int) or isinstance(chunk_id, bool):
                raise invalid_param("id", "每个向量须带整数 id", "each vector needs an integer id")
            vector = _vector(row.get("embedding"))
            widths.add(len(vector))
            vectors[chunk_id] = vector.astype("<f4").tobytes()
        if len(widths) > 1:
            raise invalid_param("embedding", "向量的维数不一致", "the vectors differ in width")
        (width,) = widths
        with self.db.session() as session:
            # A write first: SQLite takes its write lock before the reads below (a read, then a write,
            # fails when another connection committed in between); all of it rolls back on a refusal.
            session.execute(
                delete(KbStagedVector).where(
                    KbStagedVector.job_id == job_id, KbStagedVector.chunk_id.in_(list(vectors))
                )
            )
            earlier = session.scalar(
                select(func.length(KbStagedVector.embedding)).where(KbStagedVector.job_id == job_id).limit(1)
            )
            if earlier is not None and int(earlier) != width * 4:
                raise invalid_param(
                    "embedding",
                    f"向量为 {width} 维，而此作业先前的为 {int(earlier) // 4} 维",
                    f"the vectors are {width}-d; this job's earlier ones are {int(earlier) // 4}-d",
                )
            known = set(
                session.scalars(
                    select(KbChunk.id).where(KbChunk.kb_id == kb_id, KbChunk.id.in_(list(vectors)))
                )
            )
            if known:
                session.execute(
                    insert(KbStagedVector),
                    [{"job_id": job_id, "chunk_id": i, "embedding": vectors[i]} for i in sorted(known)],
                )
        return {"staged": len(known), "skipped": len(vectors) - len(known), "dimensions": width}

    def commit(
        self,
        kb_id: str,
        job_id: str,
        model: str,
        also: Callable[[Session, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Move the knowledge base to *job_id*'s vectors and *model* at once; *also* writes in the same
        transaction. Refused (409) while any chunk has no vector from the job."""
        now = utcnow()
        with self.db.session() as session:
            # The write comes first: it locks the knowledge base's row against documents being added.
            moved = session.execute(
                update(KnowledgeBase)
                .where(KnowledgeBase.id == kb_id)
                .values(version=KnowledgeBase.version + 1, updated_at=now)
            )
            kb = session.get(KnowledgeBase, kb_id, populate_existing=True)
            if not getattr(moved, "rowcount", 0) or kb is None:
                raise KbNotFound(name=kb_id)
            missing = session.scalar(
                select(func.count()).select_from(KbChunk).where(*self._unstaged(kb_id, job_id))
            )
            if missing:
                raise KbReindexIncomplete(name=kb.name, missing=int(missing))
            width = session.scalar(
                select(func.length(KbStagedVector.embedding))
                .join(KbChunk, KbChunk.id == KbStagedVector.chunk_id)
                .where(KbStagedVector.job_id == job_id, KbChunk.kb_id == kb_id)
                .limit(1)
            )
            staged = (
                select(KbStagedVector.embedding)
                .where(KbStagedVector.job_id == job_id, KbStagedVector.chunk_id == KbChunk.id)
                .scalar_subquery()
            )
            swapped = session.execute(update(KbChunk).where(KbChunk.kb_id == kb_id).values(embedding=staged))
            dimensions = int(width) // 4 if width is not None else None
            kb.embedding_model = model
            kb.dimensions = dimensions
            session.execute(delete(KbStagedVector).where(KbStagedVector.job_id == job_id))
            result = {
                "knowledge_base": kb.name,
                "model": model,
                "chunks": int(getattr(swapped, "rowcount", 0) or 0),
                "dimensions": dimensions,
                "version": kb.version,
            }
            if also is not None:
                also(session, result)
        return result

    def discard(self, job_id: str) -> int:
        """Drop what *job_id* staged (it ended without committing); how many vectors."""
        with self.db.session() as session:
            result = session.execute(delete(KbStagedVector).where(KbStagedVector.job_id == job_id))
            return int(getattr(result, "rowcount", 0) or 0)
