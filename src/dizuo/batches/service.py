"""Batches (``/v1/batches``): an input file's requests run as a compute job whose worker sends each
line through this platform's own gateway, at batch prices.

**Creating** one reads its whole input file first: each line must be a JSON object with a unique
``custom_id``, ``method`` ``POST``, the batch's ``url`` and a ``body`` the gateway would take, all for
one model this key may use. Any mistake fails the batch at once, with each bad line's number, before
anything is held. Then the batch holds its worst case (every line at its model's dearest batch price),
durably, as a compute job holds its own (402, nothing written, when the wallet cannot cover it), and
a compute job of kind ``batch`` is placed on a pool to run it.

**Running**: the job's worker (:mod:`dizuo.batches.worker`) asks for lines not answered yet (each
page handed out gives its worst case back from the batch's hold, for the gateway to hold per call)
and sends each to the gateway with the job's own key. The gateway answers it as any call (routing,
data classes, the guard, limits, metering at the deployment's batch price) and writes the answer it
charged for onto the line before the call's usage record, so a line is never sent upstream twice: a
worker that asks again gets the stored answer. Refusals that cost nothing (402, 429 after retries,
no deployment) the worker writes itself.

**Ending**: the reconciler (:meth:`Batches.round`, under the compute lease) finalizes a batch whose
job ended: the output file (answered lines, in input order, OpenAI's format) and the error file,
the rest of the hold given back. A job that ended with lines left (a lost worker, a restart of the
cluster) is followed by another, up to :data:`MAX_JOBS`; lines answered stay answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from dizuo import validate
from dizuo.accounts.keys import KeyInfo
from dizuo.accounts.tables import Organization
from dizuo.batches.answers import AnswerWriter
from dizuo.batches.files import Files, page
from dizuo.batches.tables import Batch, BatchLine, StoredFile
from dizuo.billing.holds import Scope
from dizuo.billing.meter import Meter, _cost, worst_case_tokens
from dizuo.billing.money import format_cny
from dizuo.billing.standing import Held, open_hold, parts, shrink
from dizuo.billing.tables import UsageRecord
from dizuo.errors import DizuoError, InvalidRequest, invalid_param
from dizuo.routing.deployments import batch_priced
from dizuo.store import Database, iso, utc, utcnow

__all__ = ["ENDPOINTS", "MAX_JOBS", "MAX_LINES", "BatchIn", "BatchNotFound", "Batches"]

log = logging.getLogger("dizuo.batches")
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embedding"}
MAX_LINES = 50_000
MAX_ERRORS = 100  # line errors a failed batch lists
MAX_JOBS = 3  # compute jobs run for one batch, the first included
# How long the server that created a batch has to submit its first job: until then the reconciler
# leaves a batch with no job alone (it is not a batch whose job ended: that would start a second).
STARTING = dt.timedelta(minutes=2)
LIVE = ("validating", "in_progress", "finalizing", "cancelling")
WINDOW = dt.timedelta(hours=24)


class BatchNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "batch_not_found"


class BatchIn(BaseModel):
    """``POST /v1/batches``."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(max_length=64)
    endpoint: str = Field(max_length=64)
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


def _unix(moment: dt.datetime | None) -> int | None:
    return int(utc(moment).timestamp()) if moment is not None else None


def _error(line: int | None, code: str, zh: str, en: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": f"{zh} / {en}", "param": param, "line": line}


class Batches:
    """The batches of every organization in *db*."""

    def __init__(
        self,
        db: Database,
        files: Files,
        meter: Meter,
        router: Callable[[], Any],
        *,
        max_line_bytes: int,
        jobs: Any = None,
    ) -> None:
        self.db = db
        self.files = files
        self.meter = meter
        self.router = router  # the gateway's router now (deployments change at run time)
        self.max_line_bytes = max_line_bytes
        self.jobs = jobs  # dizuo.compute.jobs.Jobs: runs the batches; None: they wait
        self.writer = AnswerWriter(db, meter.journal.writer_lock if meter.enabled else None)

    # ---- views ---------------------------------------------------------------------------

    def view(
        self, batch: Batch, counts: tuple[int, int] | None = None, live_cost: bool = False
    ) -> dict[str, Any]:
        """A batch as OpenAI's Batch API shows one, with the platform's own figures under ``dizuo``
        (its compute job, the jobs it took, what it still holds, and what its lines were charged: summed
        from their usage records once it ended, or while it runs with *live_cost*; null otherwise, as
        that sum grows with the batch while clients poll it)."""
        completed, failed = counts if counts is not None else self._counts(batch.id)
        ended = batch.status not in LIVE
        cost = self._cost(batch.id) if live_cost or ended else None
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": _unix(batch.created_at),
            "in_progress_at": _unix(batch.in_progress_at),
            "expires_at": _unix(batch.expires_at),
            "finalizing_at": _unix(batch.finalizing_at),
            "completed_at": _unix(batch.completed_at),
            "failed_at": _unix(batch.failed_at),
            "expired_at": _unix(batch.expired_at),
            "cancelling_at": _unix(batch.cancelling_at),
            "cancelled_at": _unix(batch.cancelled_at),
            "request_counts": {"total": batch.total, "completed": completed, "failed": failed},
            "metadata": batch.batch_metadata,
            "dizuo": {
                "job_id": batch.job_id,
                "jobs": batch.jobs,
                "held": format_cny(batch.held),
                "cost": format_cny(cost) if cost is not None else None,
            },
        }

    def _counts(self, batch_id: str) -> tuple[int, int]:
        """Lines answered with success, and lines refused."""
        ok = BatchLine.status_code < 300
        with self.db.session() as session:
            done, failed = session.execute(
                select(
                    func.coalesce(func.sum(case((ok, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((ok, 0), else_=1)), 0),
                ).where(BatchLine.batch_id == batch_id, BatchLine.status_code.is_not(None))
            ).one()
        return int(done), int(failed)

    def _cost(self, batch_id: str) -> int:
        """What the batch's lines were charged so far (micro-yuan), from their usage records."""
        with self.db.session() as session:
            charged = session.scalar(
                select(func.coalesce(func.sum(UsageRecord.cost), 0)).where(
                    UsageRecord.request_id.in_(
                        select(BatchLine.request_id).where(
                            BatchLine.batch_id == batch_id, BatchLine.request_id.is_not(None)
                        )
                    )
                )
            )
        return int(charged or 0)

    def _owned(self, org_id: str, batch_id: str) -> Batch:
        with self.db.session() as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.org_id != org_id:
                raise BatchNotFound(id=batch_id)
            session.expunge(batch)
            return batch

    def get(self, key: KeyInfo, batch_id: str) -> dict[str, Any]:
        return self.view(self._owned(key.org_id, batch_id))

    def listed(self, key: KeyInfo, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        limit = max(1, min(limit, 100))
        query = select(Batch).where(Batch.org_id == key.org_id)
        with self.db.session() as session:
            if after:
                mark = session.get(Batch, after)
                if mark is not None and mark.org_id == key.org_id:
                    query = query.where(
                        (Batch.created_at < mark.created_at)
                        | ((Batch.created_at == mark.created_at) & (Batch.id < mark.id))
                    )
            rows = list(
                session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1))
            )
            for row in rows:
                session.expunge(row)
        return page([self.view(row) for row in rows[:limit]], len(rows) > limit)

    def of(self, org_id: str | None, limit: int = 200) -> list[dict[str, Any]]:
        """The batches of *org_id* (None: of every organization), newest first, for the console: each
        view with its ``org_id`` and ``created`` (ISO 8601) besides."""
        query = select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
        if org_id is not None:
            query = query.where(Batch.org_id == org_id)
        with self.db.session() as session:
            rows = list(session.scalars(query))
            for row in rows:
                session.expunge(row)
        return [
            {**self.view(row, live_cost=True), "org_id": row.org_id, "created": iso(row.created_at)}
            for row in rows
        ]

    # ---- creating ------------------------------------------------------------------------

    async def create(self, key: KeyInfo, body: BatchIn) -> dict[str, Any]:
        mode = ENDPOINTS.get(body.endpoint)
        if mode is None:
            raise invalid_param(
                "endpoint",
                f"只支持 {', '.join(ENDPOINTS)}",
                f"only {', '.join(ENDPOINTS)} are supported",
            )
        if body.completion_window != "24h":
            raise invalid_param("completion_window", "目前只能是 24h", "must be 24h")
        if body.metadata is not None and (
            len(body.metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in body.metadata.items())
        ):
            raise invalid_param(
                "metadata",
                "最多 16 项，键不超过 64 个字符，值不超过 512 个字符",
                "at most 16 pairs, keys of up to 64 characters, values of up to 512",
            )
        source = await asyncio.to_thread(self.files.get, key.org_id, body.input_file_id, live=True)
        if source.purpose != "batch":
            raise invalid_param(
                "input_file_id",
                f"文件 {source.id} 的用途是 {source.purpose}，不是 batch",
                f"the file {source.id} has the purpose {source.purpose}, not batch",
            )
        lines, model, errors = await asyncio.to_thread(self._read, source, body.endpoint, mode, key)
        now = utcnow()
        batch_id = f"batch_{secrets.token_hex(12)}"
        batch = Batch(
            id=batch_id,
            org_id=key.org_id,
            key_id=key.key_id,
            endpoint=body.endpoint,
            model=model,
            input_file_id=source.id,
            completion_window=body.completion_window,
            batch_metadata=body.metadata,
            status="failed" if errors else "in_progress",
            errors=errors or None,
            total=0 if errors else len(lines),
            jobs=0,
            data_class=key.data_class,
            held=0,
            held_own=0,
            held_vouchers=[],
            created_at=now,
            expires_at=now + WINDOW,
            failed_at=now if errors else None,
            in_progress_at=None if errors else now,
        )
        if errors:
            await asyncio.to_thread(self._add, batch, [])
            return self.view(batch, (0, 0))
        assert model is not None
        scope, worst = self._scope(key, model), sum(line[4] for line in lines)

        def record(session: Session, held: Held) -> None:
            batch.held, batch.held_own = held.amount, held.own
            batch.held_vouchers = [list(part) for part in held.vouchers]
            session.add(batch)
            session.flush()
            _insert_lines(session, batch_id, lines)

        await open_hold(self.meter, self.db, key.org_id, worst, scope, record)
        await self._start(batch_id)
        return await asyncio.to_thread(self.get, key, batch_id)

    def _add(self, batch: Batch, lines: list[tuple[int, str, int, int, int]]) -> None:
        with self.db.session() as session:
            session.add(batch)
            session.flush()
            _insert_lines(session, batch.id, lines)
            session.expunge(batch)

    def _read(
        self, source: StoredFile, endpoint: str, mode: str, key: KeyInfo
    ) -> tuple[list[tuple[int, str, int, int, int]], str | None, list[dict[str, Any]]]:
        """Every line of the input file checked: ``(line, custom_id, offset, length, worst)`` each
        (its worst cost at the dearest batch price), the one model, and the errors, each with its
        1-based line number."""
        errors: list[dict[str, Any]] = []
        lines: list[tuple[int, str, int, int, int]] = []
        seen: set[str] = set()
        first: str | None = None  # the batch's one model
        deps: list[Any] = []  # its deployments cleared for the key, at batch prices
        router = self.router()

        def fail(number: int | None, code: str, zh: str, en: str, param: str | None = None) -> None:
            if len(errors) < MAX_ERRORS:
                errors.append(_error(number, code, zh, en, param))

        with self.files.store.open(source.id) as handle:
            offset = 0
            number = 0
            for raw in _lines(handle):
                number += 1
                start, offset = offset, offset + len(raw)
                text = raw.strip()
                if not text:
                    continue
                if len(raw) > self.max_line_bytes:
                    fail(number, "line_too_large", "此行超过大小上限", "the line is over the size limit")
                    continue
                if len(lines) >= MAX_LINES:
                    fail(
                        number,
                        "too_many_lines",
                        f"一个批处理最多 {MAX_LINES} 行",
                        f"at most {MAX_LINES} lines a batch",
                    )
                    break
                try:
                    item = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    fail(number, "invalid_json", f"不是合法的 JSON：{exc}", f"not valid JSON: {exc}")
                    continue
                if not isinstance(item, dict):
                    fail(number, "invalid_json", "每行须是一个 JSON 对象", "each line must be a JSON object")
                    continue
                custom_id = item.get("custom_id")
                if not isinstance(custom_id, str) or not custom_id:
                    fail(number, "missing_custom_id", "缺少 custom_id", "custom_id is missing", "custom_id")
                    continue
                if custom_id in seen:
                    fail(number, "duplicate_custom_id", f"custom_id {custom_id!r} 重复", f"the custom_id {custom_id!r} is used twice", "custom_id")  # fmt: skip
                    continue
                seen.add(custom_id)
                if item.get("method", "POST") != "POST":
                    fail(number, "invalid_method", "method 只能是 POST", "the method must be POST", "method")
                    continue
                if item.get("url") != endpoint:
                    fail(number, "mismatched_endpoint", f"url 须为批处理的端点 {endpoint}", f"the url must be the batch's endpoint {endpoint}", "url")  # fmt: skip
                    continue
                body = item.get("body")
                if not isinstance(body, dict):
                    fail(number, "invalid_body", "缺少请求体 body", "the body is missing", "body")
                    continue
                raw_body = orjson.dumps(body)
                try:
                    if mode == "chat":
                        _, model, stream = validate.chat_body(raw_body)
                        if stream:
                            raise invalid_param(
                                "stream", "批处理的请求不能流式返回", "a batch's requests cannot stream"
                            )
                    else:
                        _, model = validate.embeddings_body(raw_body)
                except InvalidRequest as exc:
                    fail(number, exc.code, exc.message("zh"), exc.message("en"), exc.param)
                    continue
                if router.mode(model) != mode or not key.may_use(model):
                    fail(number, "model_not_found", f"此密钥不能在 {endpoint} 使用模型 {model}", f"this key cannot use the model {model} at {endpoint}", "body.model")  # fmt: skip
                    continue
                if first is None:
                    first = model
                    pool = router.eligible(model, key.data_class, key.org_region, key.serves_public)
                    deps = [batch_priced(dep) for dep in pool.deps]
                elif model != first:
                    fail(number, "mismatched_model", "一个批处理只能用一个模型", "a batch uses one model only", "body.model")  # fmt: skip
                    continue
                prompt, completion = (
                    worst_case_tokens(body, len(raw_body)) if mode == "chat" else (len(raw_body), 0)
                )
                worst = max(_cost(dep, prompt, completion) for dep in deps)
                lines.append((number - 1, custom_id, start, len(raw), worst))
        if not lines and not errors:
            errors.append(_error(None, "empty_file", "输入文件没有请求", "the input file has no requests"))
        return lines, first, errors

    def _scope(self, key: KeyInfo, model: str) -> Scope:
        """What the batch's hold is for: its model at its dearest deployment (vouchers' limits)."""
        pool = self.router().eligible(model, key.data_class, key.org_region, key.serves_public)
        dearest = max(pool.deps, key=lambda dep: (dep.price_in or 0, dep.price_out or 0))
        return Scope(dearest.provider.spec.name, dearest.config.region, model)

    async def _start(self, batch_id: str) -> None:
        """Run the batch on a pool: a compute job of kind ``batch``; the batch fails, its hold given
        back, when no pool can run it."""
        if self.jobs is None:
            return
        try:
            job_id = await self._submit(batch_id)
        except DizuoError as exc:
            log.warning("batch %s could not start: %s", batch_id, exc)
            await asyncio.to_thread(
                self._end,
                batch_id,
                "failed",
                [_error(None, exc.code, exc.message("zh"), exc.message("en"))],
            )
            return
        await asyncio.to_thread(self._set, batch_id, job_id=job_id, jobs=Batch.jobs + 1)

    async def _submit(self, batch_id: str) -> str:
        """A compute job to run *batch_id* (its worker sends the lines); the job's id."""
        from dizuo.compute.jobs import JobBody

        key, hours = await asyncio.to_thread(self._owner, batch_id)
        body = JobBody(kind="batch", batch=batch_id, name=f"batch {batch_id}", cpus=0.5, max_hours=hours)
        return str((await self.jobs.submit(key, body, internal=True))["id"])

    def _owner(self, batch_id: str) -> tuple[KeyInfo, float]:
        """Who a batch's job runs for (its creator's organization and data class) and how long it may
        run (what is left of the batch's window, at least a minute)."""
        with self.db.session() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            org = session.get(Organization, batch.org_id)
            assert org is not None
            left = (utc(batch.expires_at) - utcnow()).total_seconds() / 3600
            key = KeyInfo(
                key_id=batch.key_id,
                org_id=org.id,
                org_name=org.name,
                models=None,
                data_class=batch.data_class,
                expires_at=None,
                org_region=org.region,
            )
            return key, max(left, 1 / 60)

    def _set(self, batch_id: str, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(Batch).where(Batch.id == batch_id).values(**values))

    # ---- the worker's routes and the gateway's hook --------------------------------------------

    def running(self, batch_id: str) -> Batch:
        with self.db.session() as session:
            batch = session.get(Batch, batch_id)
            if batch is None:
                raise BatchNotFound(id=batch_id)
            session.expunge(batch)
            return batch

    def pending(self, batch_id: str, limit: int = 256, after: int = -1) -> dict[str, Any]:
        """Up to *limit* lines not answered yet (past line *after*), with their requests; the worst
        case of those handed out for the first time leaves the batch's hold (the gateway holds each
        call's own)."""
        limit = max(1, min(limit, 2048))
        with self.db.session() as session:
            batch = _locked(session, batch_id)
            rows = session.execute(
                select(
                    BatchLine.line,
                    BatchLine.custom_id,
                    BatchLine.offset,
                    BatchLine.length,
                    BatchLine.worst,
                    BatchLine.handed,
                )
                .where(
                    BatchLine.batch_id == batch_id, BatchLine.status_code.is_(None), BatchLine.line > after
                )
                .order_by(BatchLine.line)
                .limit(limit)
            ).all()
            fresh = [row.line for row in rows if not row.handed]
            first_time = set(fresh)
            if fresh:
                give = sum(row.worst for row in rows if not row.handed)
                left = shrink(session, batch.org_id, _held(batch), give)
                batch.held, batch.held_own = left.amount, left.own
                batch.held_vouchers = [list(part) for part in left.vouchers]
                session.execute(
                    update(BatchLine)
                    .where(BatchLine.batch_id == batch_id, BatchLine.line.in_(fresh))
                    .values(handed=True)
                )
            pending = session.scalar(
                select(func.count())
                .select_from(BatchLine)
                .where(BatchLine.batch_id == batch_id, BatchLine.status_code.is_(None))
            )
            org_id, input_file, endpoint = batch.org_id, batch.input_file_id, batch.endpoint
        if fresh and self.meter.enabled:
            self.meter.journal.refresh(org_id)
        data = []
        with self.files.store.open(input_file) as handle:
            for row in rows:
                handle.seek(row.offset)
                item = orjson.loads(handle.read(row.length))
                # fresh: handed out for the first time, so no worker sent it before and it has no answer
                first = row.line in first_time
                data.append(
                    {"line": row.line, "custom_id": row.custom_id, "body": item["body"], "fresh": first}
                )
        return {"object": "list", "endpoint": endpoint, "data": data, "pending": int(pending or 0)}

    def answered(self, batch_id: str, line: int) -> tuple[int, bytes] | None:
        """The stored answer of *line*, or None when it waits; 400 when the batch has no such line.
        On every batch call: one indexed read, no ORM."""
        with self.db.engine.connect() as connection:
            row = connection.execute(
                select(BatchLine.status_code, BatchLine.body).where(
                    BatchLine.batch_id == batch_id, BatchLine.line == line
                )
            ).first()
        if row is None:
            raise invalid_param(
                "x-dizuo-batch-line", f"批处理没有第 {line} 行", f"the batch has no line {line}"
            )
        if row.status_code is None:
            return None
        return int(row.status_code), bytes(row.body or b"")

    async def keep(self, batch_id: str, line: int, status: int, body: bytes, request_id: str | None) -> bool:
        """The gateway's write of an answer it charged for: grouped with others arriving meanwhile,
        returned once committed (before the call's usage record is written); False when the line
        had an answer already."""
        return await self.writer.write(batch_id, line, status, body, request_id)

    def refusals(self, batch_id: str, answers: list[dict[str, Any]]) -> dict[str, int]:
        """A worker's refusals that cost nothing (status 400 and over): ``{"line", "status_code", "body"}``."""
        rows = []
        for item in answers:
            status = item.get("status_code")
            line = item.get("line")
            if not isinstance(status, int) or not 400 <= status <= 599 or not isinstance(line, int):
                raise invalid_param("data", "每项须有 line 与 400–599 的 status_code", "each needs a line and a status_code of 400-599")  # fmt: skip
            rows.append(AnswerWriter.row(batch_id, line, status, orjson.dumps(item.get("body")), None))
        return {"written": sum(self.writer.write_now(rows)) if rows else 0}

    # ---- cancelling and ending -----------------------------------------------------------

    async def cancel(self, key: KeyInfo, batch_id: str) -> dict[str, Any]:
        batch = await asyncio.to_thread(self._owned, key.org_id, batch_id)
        if batch.status in ("validating", "in_progress"):
            await asyncio.to_thread(self._set, batch_id, status="cancelling", cancelling_at=utcnow())
            if batch.job_id and self.jobs is not None:
                with contextlib.suppress(DizuoError):  # else the reconciler stops it
                    await self.jobs.stop(batch.job_id)
        return await asyncio.to_thread(self.get, key, batch_id)

    async def round(self) -> None:
        """Finalize the batches whose job ended, run those that lost theirs again, expire late ones."""
        for batch in await asyncio.to_thread(self._live):
            try:
                await self._follow(batch)
            except Exception:
                log.exception("following batch %s failed", batch.id)

    def _live(self) -> list[Batch]:
        with self.db.session() as session:
            rows = list(session.scalars(select(Batch).where(Batch.status.in_(LIVE))))
            for row in rows:
                session.expunge(row)
            return rows

    async def _follow(self, batch: Batch) -> None:
        if batch.job_id is None and batch.jobs == 0 and utc(batch.created_at) > utcnow() - STARTING:
            return  # its first job is being submitted by the server that created it
        ended = batch.job_id is None or await asyncio.to_thread(self.jobs.settled, batch.job_id)
        late = utc(batch.expires_at) <= utcnow()
        if not ended:
            if late and batch.status == "in_progress" and self.jobs is not None:
                await asyncio.to_thread(self._set, batch.id, status="cancelling", cancelling_at=utcnow())
                await self.jobs.stop(batch.job_id)
            return
        waiting = await asyncio.to_thread(self._waiting, batch.id)
        if batch.status == "cancelling":
            await asyncio.to_thread(self._end, batch.id, "expired" if late else "cancelled", None)
        elif not waiting:
            await asyncio.to_thread(self._end, batch.id, "completed", None)
        elif late:
            await asyncio.to_thread(self._end, batch.id, "expired", None)
        elif batch.jobs < MAX_JOBS and self.jobs is not None:
            log.info("batch %s: its job ended with %d lines left; running it again", batch.id, waiting)
            await self._start(batch.id)
        else:
            why = f"{MAX_JOBS} 个作业后仍有 {waiting} 行未完成", f"{waiting} lines left after {MAX_JOBS} jobs"
            await asyncio.to_thread(self._end, batch.id, "failed", [_error(None, "batch_incomplete", *why)])

    def _waiting(self, batch_id: str) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(BatchLine)
                    .where(BatchLine.batch_id == batch_id, BatchLine.status_code.is_(None))
                )
                or 0
            )

    def _end(self, batch_id: str, status: Literal["completed", "failed", "cancelled", "expired"], errors: list[dict[str, Any]] | None) -> None:  # fmt: skip
        """Write the output and error files, give back the rest of the hold, and end the batch."""
        self._set(batch_id, status="finalizing", finalizing_at=utcnow())
        batch = self.running(batch_id)
        output, error = self._results(batch)
        now = utcnow()
        with self.db.session() as session:
            row = _locked(session, batch_id)
            shrink(session, row.org_id, _held(row), row.held)
            row.held, row.held_own, row.held_vouchers = 0, 0, []
            row.status = status
            row.output_file_id = output
            row.error_file_id = error
            if errors:
                row.errors = [*(row.errors or []), *errors]
            setattr(row, f"{status}_at", now)
            org_id = row.org_id
        if self.meter.enabled:
            self.meter.journal.refresh(org_id)

    def _results(self, batch: Batch) -> tuple[str | None, str | None]:
        """The output file (answers under 300) and the error file (the rest), in input order."""

        def lines(ok: bool) -> Iterator[bytes]:
            with self.db.session() as session:
                query = (
                    select(
                        BatchLine.line,
                        BatchLine.custom_id,
                        BatchLine.status_code,
                        BatchLine.body,
                        BatchLine.request_id,
                    )
                    .where(BatchLine.batch_id == batch.id, BatchLine.status_code.is_not(None))
                    .where(BatchLine.status_code < 300 if ok else BatchLine.status_code >= 300)
                    .order_by(BatchLine.line)
                    .execution_options(yield_per=1000)
                )
                for line, custom_id, status, body, request_id in session.execute(query):
                    answer = orjson.loads(body) if body else None
                    error = None
                    if not ok:
                        inner = answer.get("error") if isinstance(answer, dict) else None
                        inner = inner if isinstance(inner, dict) else {}
                        error = {"code": inner.get("code"), "message": inner.get("message")}
                    yield (
                        orjson.dumps(
                            {
                                "id": f"batch_req_{batch.id.removeprefix('batch_')}_{line}",
                                "custom_id": custom_id,
                                "response": {"status_code": status, "request_id": request_id, "body": answer},
                                "error": error,
                            }
                        )
                        + b"\n"
                    )

        completed, failed = self._counts(batch.id)
        output = error = None
        if completed:
            output = self.files.write(
                batch.org_id, f"{batch.id}_output.jsonl", "batch_output", lines(True)
            ).id
        if failed:
            error = self.files.write(batch.org_id, f"{batch.id}_error.jsonl", "batch_output", lines(False)).id
        return output, error


def _locked(session: Session, batch_id: str) -> Batch:
    """The batch, its row locked for the transaction: written first, so that SQLite takes its write
    lock before the transaction reads (a read first, then a write, fails when another connection
    committed in between), and PostgreSQL its row lock."""
    moved = session.execute(update(Batch).where(Batch.id == batch_id).values(status=Batch.status))
    batch = session.get(Batch, batch_id, populate_existing=True)
    if not getattr(moved, "rowcount", 0) or batch is None:
        raise BatchNotFound(id=batch_id)
    return batch


def _held(batch: Batch) -> Held:
    return Held(batch.held, batch.held_own, parts(batch.held_vouchers or []))


def _insert_lines(session: Session, batch_id: str, lines: list[tuple[int, str, int, int, int]]) -> None:
    for start in range(0, len(lines), 1000):
        session.execute(
            insert(BatchLine),
            [
                {"batch_id": batch_id, "line": line, "custom_id": custom_id, "offset": offset,
                 "length": length, "worst": worst, "handed": False}
                for line, custom_id, offset, length, worst in lines[start : start + 1000]
            ],
        )  # fmt: skip


def _lines(handle: Any) -> Iterator[bytes]:
    """The file's lines, each with its line break."""
    yield from handle
