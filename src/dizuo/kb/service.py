"""Knowledge bases of an organization: create, add and replace documents, query, ask.

Adding a document parses, chunks, segments and embeds it **before** touching the database, then
replaces the document's chunks in one transaction: a file that fails anywhere leaves the knowledge
base exactly as it was, and re-adding an unchanged file does nothing.

Indexes are held per knowledge base in this process and rebuilt when its ``version`` moved (one
small read per query), so every replica answers from the latest documents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dizuo.errors import DizuoError, InvalidRequest
from dizuo.kb.chunking import MAX_CHARS, Chunk, chunk_blocks, index_text
from dizuo.kb.formats import DEFAULT_MAX_BYTES, DocumentError
from dizuo.kb.index import Filters, Mode, SearchIndex, terms
from dizuo.kb.isolation import DocumentReader, in_process
from dizuo.kb.models import Models
from dizuo.kb.script import simplified
from dizuo.kb.tables import KbChunk, KbDocument, KnowledgeBase
from dizuo.lazy import module
from dizuo.store import Database, iso, utcnow

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["KbConflict", "KbNotFound", "KnowledgeBases", "Passage", "locator"]

log = logging.getLogger(__name__)
STALE_OK_CHUNKS = 20_000  # from this size an outdated index keeps serving while it is rebuilt
_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,128}$")


class KbNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "kb_not_found"


class KbConflict(DizuoError):
    status = 409
    type = "invalid_request_error"
    default_code = "kb_exists"


@dataclass(frozen=True, slots=True, kw_only=True)
class Passage:
    """A retrieved chunk, as query answers and citations show it."""

    text: str
    source: str
    locator: str
    score: float
    clause: str | None
    page: int | None
    heading_path: tuple[str, ...]
    kind: str
    cosine: float = 0.0  # the question's similarity to it (0 when retrieved by BM25 alone)

    def public(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "locator": self.locator,
            "score": round(self.score, 6),
            "clause": self.clause,
            "page": self.page,
            "heading_path": list(self.heading_path),
        }


def locator(clause: str | None, page: int | None, heading_path: tuple[str, ...], seq: int) -> str:
    """Where a chunk sits, as a reader would cite it: 「第 4.3 条」, 「第 2 页」, a heading, or the
    chunk's position."""
    parts = []
    if clause:
        parts.append(clause if clause.startswith("第") else f"第 {clause} 条")
    if page:
        parts.append(f"第 {page} 页")
    if not parts and heading_path:
        parts.append(heading_path[-1])
    return "，".join(parts) or f"第 {seq + 1} 段"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidRequest(
            "invalid_param",
            param="name",
            reason_zh="名称须为 1–128 个字符，不含 / \\ 或控制字符",
            reason_en="a name has 1-128 characters and no / \\ or control characters",
        )
    return name


class KnowledgeBases:
    """The knowledge bases of every organization in *db*; each call names its organization."""

    def __init__(
        self,
        db: Database,
        *,
        embedding_model: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        read: DocumentReader | None = None,
        chunk_chars: int = MAX_CHARS,
        originals: Path | None = None,
    ) -> None:
        """*read* parses a file into blocks: the server gives an :class:`~dizuo.kb.isolation.IsolatedParser`;
        by default files are parsed in this process. *originals*: a folder where each document's file
        is kept as it was added (by its SHA-256), for the tools that read a document whole (the
        inspection auditor); None keeps only the chunks."""
        self.db = db
        self.originals = originals
        self.embedding_model = embedding_model
        self.max_bytes = max_bytes
        self.read = read or in_process(max_bytes)
        self.chunk_chars = chunk_chars
        self._indexes: dict[str, SearchIndex] = {}
        self._build_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- knowledge bases ---------------------------------------------------------------------

    def create(
        self, org_id: str, name: str, description: str = "", embedding_model: str | None = None
    ) -> dict[str, Any]:
        name = check_name(name)
        row = KnowledgeBase(
            id=_new_id("kb"),
            org_id=org_id,
            name=name,
            description=description,
            embedding_model=embedding_model or self.embedding_model,
        )
        try:
            with self.db.session() as session:
                session.add(row)
        except IntegrityError:
            raise KbConflict(name=name) from None
        return self.describe(org_id, name)

    def _get(self, session: Session, org_id: str, name: str) -> KnowledgeBase:
        row: KnowledgeBase | None = session.scalars(
            select(KnowledgeBase).where(KnowledgeBase.org_id == org_id, KnowledgeBase.name == name)
        ).first()
        if row is None:
            raise KbNotFound(name=name)
        return row

    def _views(self, session: Session, *where: Any) -> list[dict[str, Any]]:
        """Knowledge bases matching *where* with their document, chunk and character counts, by name."""
        rows = session.execute(
            select(KnowledgeBase, func.count(KbDocument.id), func.coalesce(func.sum(KbDocument.chunks), 0),
                   func.coalesce(func.sum(KbDocument.characters), 0))
            .outerjoin(KbDocument, KbDocument.kb_id == KnowledgeBase.id)
            .where(*where)
            .group_by(KnowledgeBase.id)
        ).all()  # fmt: skip
        return sorted((self._view(*row) for row in rows), key=lambda v: v["name"])

    @staticmethod
    def _view(kb: KnowledgeBase, documents: int, chunks: int, characters: int) -> dict[str, Any]:
        return {
            "id": kb.id,
            "name": kb.name,
            "description": kb.description,
            "embedding_model": kb.embedding_model,
            "dimensions": kb.dimensions,
            "documents": int(documents),
            "chunks": int(chunks),
            "characters": int(characters),
            "created_at": iso(kb.created_at),
            "updated_at": iso(kb.updated_at),
        }

    def describe(self, org_id: str, name: str) -> dict[str, Any]:
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            return self._views(session, KnowledgeBase.id == kb.id)[0]

    def list_bases(self, org_id: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return self._views(session, KnowledgeBase.org_id == org_id)

    def delete(self, org_id: str, name: str) -> None:
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            digests = set(session.scalars(select(KbDocument.sha256).where(KbDocument.kb_id == kb.id)))
            session.execute(delete(KbChunk).where(KbChunk.kb_id == kb.id))
            session.execute(delete(KbDocument).where(KbDocument.kb_id == kb.id))
            session.delete(kb)
            self._indexes.pop(kb.id, None)
        self._forget(digests)

    # ---- the documents' files, kept whole ------------------------------------------------------

    def _original(self, digest: str) -> Path | None:
        return None if self.originals is None else self.originals / digest[:2] / digest

    def _keep(self, digest: str, data: bytes) -> None:
        """Keep *data* (whose SHA-256 is *digest*) whole, written under a temporary name and renamed."""
        path = self._original(digest)
        if path is None or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{digest}.{secrets.token_hex(4)}")
        part.write_bytes(data)
        part.replace(path)

    def _forget(self, digests: set[str]) -> None:
        """Remove the kept files of *digests* that no document refers to any more."""
        if self.originals is None or not digests:
            return
        with self.db.session() as session:
            used = set(session.scalars(select(KbDocument.sha256).where(KbDocument.sha256.in_(digests))))
        for digest in digests - used:
            path = self._original(digest)
            if path is not None:
                path.unlink(missing_ok=True)

    def originals_of(
        self, org_id: str, names: list[str], wanted: Callable[[str, str], bool] | None = None
    ) -> list[tuple[str, str, bytes | None]]:
        """``(knowledge base, source, file)`` of the documents in *org_id*'s knowledge bases *names*
        (all of them when empty) that *wanted* (knowledge base, source) picks (every one when None),
        the file None where it was not kept (added before files were kept, or kept nowhere). Only
        the picked documents' files are read."""
        with self.db.session() as session:
            query = (
                select(KnowledgeBase.name, KbDocument.source, KbDocument.sha256)
                .join(KbDocument, KbDocument.kb_id == KnowledgeBase.id)
                .where(KnowledgeBase.org_id == org_id)
                .order_by(KnowledgeBase.name, KbDocument.source)
            )
            if names:
                query = query.where(KnowledgeBase.name.in_(names))
            rows = session.execute(query).all()
        found = []
        for kb, source, digest in rows:
            if wanted is not None and not wanted(kb, source):
                continue
            path = self._original(digest)
            data = path.read_bytes() if path is not None and path.is_file() else None
            found.append((kb, source, data))
        return found

    # ---- documents ---------------------------------------------------------------------------

    def documents(self, org_id: str, name: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            rows = session.scalars(select(KbDocument).where(KbDocument.kb_id == kb.id)).all()
            return sorted((self._document_view(row) for row in rows), key=lambda v: v["source"])

    @staticmethod
    def _document_view(row: KbDocument, status: str | None = None) -> dict[str, Any]:
        view = {
            "id": row.id,
            "source": row.source,
            "sha256": row.sha256,
            "bytes": row.size,
            "characters": row.characters,
            "chunks": row.chunks,
            "updated_at": iso(row.updated_at),
        }
        if status is not None:
            view["status"] = status
        return view

    def prepare(self, source: str, data: bytes) -> list[Chunk]:
        """Parse and chunk a file (CPU work, no database); raises DocumentError."""
        blocks = self.read(source, data)
        chunks = chunk_blocks(blocks, self.chunk_chars)
        if not chunks:
            raise DocumentError("document_empty", source)
        return chunks

    async def add(self, org_id: str, name: str, source: str, data: bytes, models: Models) -> dict[str, Any]:
        """Add the file *source*, or replace the document of that name when its contents changed.

        Returns the document with ``status``: ``added``, ``replaced`` or ``unchanged``.
        """
        source = check_name(source.replace("\\", "/").rsplit("/", 1)[-1]) if source else ""
        digest = hashlib.sha256(data).hexdigest()
        kb_id, model, existing = await asyncio.to_thread(self._lookup_document, org_id, name, source)
        if existing is not None and existing.sha256 == digest:
            # Kept now if it was added before files were kept (adding it again is the remedy).
            await asyncio.to_thread(self._keep, digest, data)
            return self._document_view(existing, "unchanged")
        chunks = await asyncio.to_thread(self.prepare, source, data)
        texts = [index_text(c.heading_path, c.text) for c in chunks]
        term_lists = await asyncio.to_thread(lambda: [" ".join(terms(text)) for text in texts])
        vectors = await models.embed(model, [simplified(text) for text in texts])
        if vectors.shape[0] != len(chunks):
            raise InvalidRequest(
                "invalid_param",
                param="embedding_model",
                reason_zh=f"嵌入模型 {model} 返回的向量数与文本数不一致",
                reason_en=f"the embedding model {model} returned a different number of vectors than texts",
            )
        await asyncio.to_thread(self._keep, digest, data)
        row = await asyncio.to_thread(
            self._store, kb_id, model, source, digest, len(data), chunks, term_lists, vectors.astype("<f4")
        )
        if existing is not None:
            await asyncio.to_thread(self._forget, {existing.sha256})
        self._refresh_large(kb_id)
        return self._document_view(row, "replaced" if existing is not None else "added")

    def _refresh_large(self, kb_id: str) -> None:
        """After a change here, start rebuilding a large index at once rather than at the next query."""
        cached = self._indexes.get(kb_id)
        if cached is not None and len(cached) >= STALE_OK_CHUNKS:
            self._rebuild_in_background(kb_id)

    def _lookup_document(self, org_id: str, name: str, source: str) -> tuple[str, str, KbDocument | None]:
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            existing = session.scalars(
                select(KbDocument).where(KbDocument.kb_id == kb.id, KbDocument.source == source)
            ).first()
            if existing is not None:
                session.expunge(existing)
            return kb.id, kb.embedding_model, existing

    def _store(
        self,
        kb_id: str,
        model: str,
        source: str,
        digest: str,
        size: int,
        chunks: list[Chunk],
        term_lists: list[str],
        vectors: np.ndarray,
    ) -> KbDocument:
        now = utcnow()
        dims = int(vectors.shape[1])
        with self.db.session() as session:
            # The write comes first: it locks the knowledge base's row, so that a re-embedding that
            # commits meanwhile is seen below, not mixed into the index with this file's vectors.
            self._touch(session, kb_id, now)
            kb = session.get(KnowledgeBase, kb_id, populate_existing=True)
            if kb is None:  # deleted meanwhile
                raise KbNotFound(name=kb_id)
            if kb.embedding_model != model:
                raise KbConflict("kb_model_changed", name=kb.name, model=kb.embedding_model)
            if kb.dimensions is not None and kb.dimensions != dims:
                raise InvalidRequest(
                    "invalid_param",
                    param="embedding_model",
                    reason_zh=f"嵌入模型返回 {dims} 维向量，而知识库已有的是 {kb.dimensions} 维",
                    reason_en=f"the embedding model returned {dims}-d vectors; the knowledge base holds {kb.dimensions}-d",
                )
            document = session.scalars(
                select(KbDocument).where(KbDocument.kb_id == kb_id, KbDocument.source == source)
            ).first()
            if document is None:
                document = KbDocument(id=_new_id("doc"), kb_id=kb_id, source=source, created_at=now)
                session.add(document)
            else:
                session.execute(delete(KbChunk).where(KbChunk.document_id == document.id))
            document.sha256 = digest
            document.size = size
            document.characters = sum(len(c.text) for c in chunks)
            document.chunks = len(chunks)
            document.updated_at = now
            session.flush()
            session.add_all(
                KbChunk(
                    kb_id=kb_id,
                    document_id=document.id,
                    seq=seq,
                    text=chunk.text,
                    heading_path=list(chunk.heading_path),
                    clause=chunk.clause,
                    page=chunk.page,
                    kind=chunk.kind,
                    terms=term_list,
                    embedding=vector.tobytes(),
                )
                for seq, (chunk, term_list, vector) in enumerate(
                    zip(chunks, term_lists, vectors, strict=True)
                )
            )
            kb.dimensions = dims
            session.flush()
            session.expunge(document)
            return document

    @staticmethod
    def _touch(session: Session, kb_id: str, now: dt.datetime) -> None:
        session.execute(
            update(KnowledgeBase)
            .where(KnowledgeBase.id == kb_id)
            .values(version=KnowledgeBase.version + 1, updated_at=now)
        )

    def delete_document(self, org_id: str, name: str, source: str) -> None:
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            document = session.scalars(
                select(KbDocument).where(KbDocument.kb_id == kb.id, KbDocument.source == source)
            ).first()
            if document is None:
                raise KbNotFound("kb_document_not_found", name=name, source=source)
            session.execute(delete(KbChunk).where(KbChunk.document_id == document.id))
            session.delete(document)
            self._touch(session, kb.id, utcnow())
            digest = document.sha256
        self._forget({digest})

    # ---- retrieval ---------------------------------------------------------------------------

    def _lock_for(self, kb_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._build_locks.setdefault(kb_id, threading.Lock())

    def index(self, org_id: str, name: str) -> tuple[KnowledgeBase, SearchIndex]:
        """The knowledge base and an index of its current version.

        A small index that moved is rebuilt here and now. A large one (``STALE_OK_CHUNKS`` or more;
        9 s at 100k chunks) keeps answering from its previous version while a background thread
        rebuilds it: new chunks show up when the rebuild lands, and chunks deleted meanwhile are
        never returned (their rows are gone when the passages are read).
        """
        with self.db.session() as session:
            kb = self._get(session, org_id, name)
            session.expunge(kb)
        cached = self._indexes.get(kb.id)
        if cached is not None and cached.version == kb.version:
            return kb, cached
        if cached is not None and len(cached) >= STALE_OK_CHUNKS:
            self._rebuild_in_background(kb.id)
            return kb, cached
        with self._lock_for(kb.id):
            cached = self._indexes.get(kb.id)
            if cached is not None and cached.version == kb.version:
                return kb, cached
            built = self._build(kb.id)
            self._indexes[kb.id] = built
            return kb, built

    def _rebuild_in_background(self, kb_id: str) -> None:
        lock = self._lock_for(kb_id)
        if not lock.acquire(blocking=False):
            return  # a rebuild is under way

        def rebuild() -> None:
            try:
                self._indexes[kb_id] = self._build(kb_id)
            except Exception:  # the next query tries again; the old index keeps serving
                log.exception("rebuilding the index of knowledge base %s failed", kb_id)
            finally:
                lock.release()

        threading.Thread(target=rebuild, name=f"dizuo-kb-index-{kb_id}", daemon=True).start()

    def _build(self, kb_id: str) -> SearchIndex:
        """An index of the chunks of *kb_id*, with the version read in the same transaction."""
        with self.db.session() as session:
            version = session.scalar(select(KnowledgeBase.version).where(KnowledgeBase.id == kb_id)) or 0
            rows = session.execute(
                select(
                    KbChunk.id,
                    KbChunk.terms,
                    KbChunk.embedding,
                    KbDocument.source,
                    KbChunk.clause,
                    KbChunk.kind,
                )
                .join(KbDocument, KbDocument.id == KbChunk.document_id)
                .where(KbChunk.kb_id == kb_id)
                .order_by(KbChunk.id)
            ).all()
        # The rows' own vectors give the width (every chunk of a knowledge base has the same).
        flat = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4")
        vectors = flat.reshape(len(rows), len(flat) // max(len(rows), 1))
        return SearchIndex.build(
            version=version,
            ids=[r[0] for r in rows],
            term_lists=(r[1].split() for r in rows),
            vectors=vectors,
            sources=[r[3] for r in rows],
            clauses=[r[4] for r in rows],
            kinds=[r[5] for r in rows],
        )

    async def query(
        self,
        org_id: str,
        name: str,
        question: str,
        models: Models,
        k: int = 5,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Passage]:
        """The *k* passages that best answer *question*, best first."""
        question = question.strip()
        if not question:
            raise InvalidRequest("missing_param", param="question")
        kb, index = await asyncio.to_thread(self.index, org_id, name)
        vector = None
        if mode != "bm25" and len(index):
            vector = (await models.embed(kb.embedding_model, [simplified(question)]))[0]
        hits = await asyncio.to_thread(lambda: index.search(terms(question), vector, k, mode, filters))
        return await asyncio.to_thread(self._passages, index, hits)

    def _passages(self, index: SearchIndex, hits: list[Any]) -> list[Passage]:
        if not hits:
            return []
        ids = [int(index.ids[hit.row]) for hit in hits]
        with self.db.session() as session:
            rows = {row.id: row for row in session.scalars(select(KbChunk).where(KbChunk.id.in_(ids)))}
        passages = []
        for hit, chunk_id in zip(hits, ids, strict=True):
            row = rows.get(chunk_id)
            if row is None:  # deleted since the index was built
                continue
            path = tuple(row.heading_path or ())
            passages.append(
                Passage(
                    text=row.text,
                    source=index.sources[hit.row],
                    locator=locator(row.clause, row.page, path, row.seq),
                    score=hit.score,
                    clause=row.clause,
                    page=row.page,
                    heading_path=path,
                    kind=row.kind,
                    cosine=hit.cosine,
                )
            )
        return passages
