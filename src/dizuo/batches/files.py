"""Files of the Files API (``/v1/files``): an organization's uploads and its batches' results.

Bytes live in a :class:`FileStore`; the database keeps each file's record. The one store today is
:class:`LocalDiskStore`, a folder under the data directory: several replicas share it by mounting
the same volume there (NFS, a Kubernetes ``ReadWriteMany`` volume); an S3-compatible store can take
its place behind the same few methods. A file is written to a temporary name and renamed when
whole, so a reader never sees half a file and a failed upload leaves nothing.

Uploads are read from the request as it arrives (``multipart/form-data``, parsed in pieces by
python-multipart) straight into the store: never held whole in memory, refused with 413 as soon as
they pass the size limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import select

from dizuo.batches.tables import StoredFile
from dizuo.errors import BodyTooLarge, DizuoError, InvalidRequest, invalid_param
from dizuo.store import Database, utc, utcnow

__all__ = [
    "UPLOAD_PURPOSES",
    "FileNotFound",
    "FileStore",
    "Files",
    "LocalDiskStore",
    "Partial",
    "file_view",
    "page",
]

UPLOAD_PURPOSES = ("batch",)


class FileNotFound(DizuoError):
    """No file of that id in this key's organization (another organization's is not found either)."""

    status = 404
    type = "invalid_request_error"
    default_code = "file_not_found"


class Partial(Protocol):
    """A file being written: kept by :meth:`keep`, dropped by :meth:`drop`."""

    def write(self, data: bytes) -> None: ...

    def keep(self) -> None: ...

    def drop(self) -> None: ...


class FileStore(Protocol):
    def create(self, file_id: str) -> Partial:
        """A new file *file_id* to write; nobody sees it before it is kept."""

    def open(self, file_id: str) -> IO[bytes]:
        """*file_id*'s bytes, to read."""

    def delete(self, file_id: str) -> None:
        """Forget *file_id*'s bytes (nothing when there are none)."""


class _DiskPartial:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        self.out = self.partial.open("wb")

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def keep(self) -> None:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        self.partial.replace(self.path)

    def drop(self) -> None:
        self.out.close()
        self.partial.unlink(missing_ok=True)


class LocalDiskStore:
    """Files in a folder (``<data_dir>/files/ab/file-…ab``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, file_id: str) -> Path:
        name = Path(file_id).name  # ids are ours; never a path
        return self.root / name[-2:] / name

    def create(self, file_id: str) -> Partial:
        return _DiskPartial(self._path(file_id))

    def open(self, file_id: str) -> IO[bytes]:
        return self._path(file_id).open("rb")

    def delete(self, file_id: str) -> None:
        self._path(file_id).unlink(missing_ok=True)


def _unix(moment: dt.datetime | None) -> int | None:
    return int(utc(moment).timestamp()) if moment is not None else None


def file_view(row: StoredFile) -> dict[str, Any]:
    """A file as OpenAI's Files API shows one."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": _unix(row.created_at),
        "expires_at": _unix(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
    }


def page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """A page of a list as OpenAI's APIs answer one (``after`` the last id gives the next)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge("file_too_large", mb=f"{limit / 1e6:g}")


class _Upload:
    """What a multipart body carried: its fields, and its file written to the store as it came."""

    def __init__(self, out: Partial, file_id: str, limit: int) -> None:
        self.out = out
        self.file_id = file_id
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self._headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._is_file = False
        self._text = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._name, self._is_file, self._text = {}, None, False, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value  # bytes: names may be UTF-8
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options and self._name == "file":
            if self.filename is not None:
                raise invalid_param("file", "只能上传一个文件", "one file per upload")
            self._is_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._is_file:
            self.size += len(piece)
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.digest.update(piece)
            self.out.write(piece)
        else:
            self._text += piece
            if len(self._text) > 4096:
                raise invalid_param(self._name or "form", "表单字段过长", "a form field is too long")

    def _end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._text.decode("utf-8", "replace")


class Files:
    """The files of every organization in *db*, their bytes in *store*."""

    def __init__(self, db: Database, store: FileStore, max_bytes: int) -> None:
        self.db = db
        self.store = store
        self.max_bytes = max_bytes

    async def upload(
        self, org_id: str, content_type: str, declared: int | None, body: AsyncIterator[bytes]
    ) -> dict[str, Any]:
        """Store the file of a ``multipart/form-data`` upload (fields ``file``, ``purpose``, and
        optionally ``expires_after[anchor]`` = ``created_at`` with ``expires_after[seconds]``)."""
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise invalid_param(
                "file", "请以 multipart/form-data 上传文件", "upload the file as multipart/form-data"
            )
        if declared is not None and declared > self.max_bytes + 64 * 1024:  # the form's own bytes beside
            raise _too_large(self.max_bytes)
        file_id = f"file-{secrets.token_hex(12)}"
        out = await asyncio.to_thread(self.store.create, file_id)
        try:
            upload = _Upload(out, file_id, self.max_bytes)
            parser = MultipartParser(boundary, upload.callbacks())  # type: ignore[arg-type]
            async for piece in body:
                await asyncio.to_thread(parser.write, piece)
            parser.finalize()
            record = self._check(org_id, upload)
            await asyncio.to_thread(out.keep)
        except BaseException:
            await asyncio.to_thread(out.drop)
            raise
        try:
            await asyncio.to_thread(self._save, record)
        except BaseException:
            self.store.delete(file_id)
            raise
        return file_view(record)

    def _check(self, org_id: str, upload: _Upload) -> StoredFile:
        purpose = upload.fields.get("purpose")
        if purpose is None:
            raise InvalidRequest("missing_param", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            raise invalid_param(
                "purpose",
                f"不支持用途 {purpose!r}（可用：{', '.join(UPLOAD_PURPOSES)}）",
                f"the purpose {purpose!r} is not supported (use: {', '.join(UPLOAD_PURPOSES)})",
            )
        if upload.filename is None:
            raise InvalidRequest("missing_param", param="file")
        if upload.size == 0:
            raise invalid_param("file", "文件是空的", "the file is empty")
        now = utcnow()
        expires = None
        seconds = upload.fields.get("expires_after[seconds]")
        if seconds is not None:
            if upload.fields.get("expires_after[anchor]", "created_at") != "created_at":
                raise invalid_param(
                    "expires_after", "anchor 只能是 created_at", "the anchor must be created_at"
                )
            if not seconds.isdigit() or not 3600 <= int(seconds) <= 30 * 86400:
                raise invalid_param(
                    "expires_after",
                    "seconds 须在 3600 到 2592000（30 天）之间",
                    "seconds must be between 3600 and 2592000 (30 days)",
                )
            expires = now + dt.timedelta(seconds=int(seconds))
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:512] or "upload"
        return StoredFile(
            id=upload.file_id,
            org_id=org_id,
            purpose=purpose,
            filename=name,
            bytes=upload.size,
            sha256=upload.digest.hexdigest(),
            created_at=now,
            expires_at=expires,
        )

    def _save(self, record: StoredFile) -> None:
        with self.db.session() as session:
            session.add(record)
            session.flush()
            session.expunge(record)

    def write(self, org_id: str, filename: str, purpose: str, lines: Iterator[bytes]) -> StoredFile:
        """A file the platform writes for *org_id* (a batch's output) from *lines*."""
        file_id = f"file-{secrets.token_hex(12)}"
        digest = hashlib.sha256()
        size = 0
        out = self.store.create(file_id)
        try:
            for line in lines:
                out.write(line)
                digest.update(line)
                size += len(line)
            out.keep()
        except BaseException:
            out.drop()
            raise
        record = StoredFile(
            id=file_id,
            org_id=org_id,
            purpose=purpose,
            filename=filename,
            bytes=size,
            sha256=digest.hexdigest(),
            created_at=utcnow(),
        )
        self._save(record)
        return record

    def get(self, org_id: str, file_id: str, *, live: bool = False) -> StoredFile:
        """*org_id*'s file *file_id* (404 for another's); with *live*, 400 when it has expired."""
        with self.db.session() as session:
            row = session.get(StoredFile, file_id)
            if row is None or row.org_id != org_id:
                raise FileNotFound(id=file_id)
            session.expunge(row)
        if live and row.expires_at is not None and utc(row.expires_at) <= utcnow():
            raise InvalidRequest("file_expired", param="input_file_id", id=file_id)
        return row

    def listed(
        self, org_id: str, purpose: str | None, limit: int, after: str | None, order: str
    ) -> dict[str, Any]:
        limit = max(1, min(limit, 10_000))
        query = select(StoredFile).where(StoredFile.org_id == org_id)
        if purpose:
            query = query.where(StoredFile.purpose == purpose)
        newest_first = order != "asc"
        with self.db.session() as session:
            if after:
                mark = session.get(StoredFile, after)
                if mark is not None and mark.org_id == org_id:
                    beyond = (StoredFile.created_at, StoredFile.id)
                    query = query.where(
                        (beyond[0] < mark.created_at)
                        | ((beyond[0] == mark.created_at) & (beyond[1] < mark.id))
                        if newest_first
                        else (beyond[0] > mark.created_at)
                        | ((beyond[0] == mark.created_at) & (beyond[1] > mark.id))
                    )
            ordering = (
                (StoredFile.created_at.desc(), StoredFile.id.desc())
                if newest_first
                else (StoredFile.created_at, StoredFile.id)
            )
            rows = list(session.scalars(query.order_by(*ordering).limit(limit + 1)))
        return page([file_view(row) for row in rows[:limit]], len(rows) > limit)

    def content(self, org_id: str, file_id: str) -> tuple[StoredFile, IO[bytes]]:
        row = self.get(org_id, file_id)
        return row, self.store.open(file_id)

    def delete(self, org_id: str, file_id: str) -> dict[str, Any]:
        row = self.get(org_id, file_id)
        with self.db.session() as session:
            found = session.get(StoredFile, row.id)
            if found is not None:
                session.delete(found)
        self.store.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}
