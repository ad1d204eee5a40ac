"""The data sandbox's service: datasets, access requests, grants and queries.

A data owner registers a dataset (general or important, never core) with each column's sensitivity;
an enterprise requests it for a purpose and period; the owner grants it with conditions (columns,
the minimum group size k, whether rows may leave, a privacy budget ε, a query budget, an expiry).
A query is checked (:mod:`dizuo.sandbox.policy`), run in the store next to the data, and what it
returns passes disclosure control (:mod:`dizuo.sandbox.disclosure`) before it leaves. Every act and
every query's decision is recorded in ``sandbox_queries`` and the platform's audit trail, in the
transaction that makes it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from dizuo.accounts.tables import Organization
from dizuo.errors import DizuoError, InvalidRequest, invalid_param
from dizuo.guard.detect import scan
from dizuo.sandbox.columns import Column, Refused
from dizuo.sandbox.store import QueryFailed, QueryLimits, SandboxStore, Store, StoreError, TooSlow
from dizuo.sandbox.tables import SandboxDataset, SandboxGrant, SandboxQuery, SandboxRequest
from dizuo.store import Database, iso, utc, utcnow
from dizuo.store.audit import append
from dizuo.validate import validated

if TYPE_CHECKING:
    from dizuo.sandbox.policy import Plan

# The query policy (sqlglot, 17 MB) and disclosure control are imported by the queries that use them:
# a gateway process whose callers never query the sandbox does without them.

__all__ = [
    "DatasetIn",
    "GrantIn",
    "Sandbox",
    "SandboxForbidden",
    "SandboxNotFound",
    "SandboxQueryIn",
    "SandboxRefused",
    "SandboxRequestIn",
    "SandboxTaken",
]

NAME = re.compile(r"^[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{0,63}$")
SENSITIVITIES = ("identifier", "quasi", "sensitive", "public")
DEFAULT_EPSILON = 0.1  # what one query spends when it does not say
LOOKS_LIKE = {  # guard entity types a column's values should not be, unless it is an identifier
    "CN_RESIDENT_ID": ("居民身份证号", "resident ID numbers"),
    "CN_MOBILE": ("手机号", "mobile numbers"),
    "BANK_CARD": ("银行卡号", "bank card numbers"),
    "EMAIL": ("电子邮箱", "email addresses"),
    "PASSPORT": ("护照号", "passport numbers"),
}
SAMPLE = 400
TEXTUAL = (
    "VARCHAR",
    "BIGINT",
    "HUGEINT",
    "UBIGINT",
    "DECIMAL",
)  # a phone or card number may read as a number


class SandboxNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "sandbox_dataset_not_found"


class SandboxForbidden(DizuoError):
    status = 403
    type = "permission_error"
    default_code = "sandbox_not_granted"


class SandboxTaken(DizuoError):
    status = 409
    type = "invalid_request_error"
    default_code = "sandbox_dataset_taken"


class SandboxRefused(InvalidRequest):
    """A query the policy refused (or SQL that does not parse), with where in the SQL."""

    def __init__(self, refused: Refused) -> None:
        at_zh = f"（第 {refused.line} 行第 {refused.col} 列）" if refused.line else ""
        at_en = f" (line {refused.line}, column {refused.col})" if refused.line else ""
        super().__init__(
            refused.code,
            param="sql",
            where_zh=at_zh,
            where_en=at_en,
            reason_zh=refused.zh,
            reason_en=refused.en,
        )
        self.line, self.col = refused.line, refused.col


class DatasetIn(BaseModel):
    """A dataset as its owner registers it (the file comes beside it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=4000)
    classification: Literal["general", "important", "core"]
    personal: bool = False
    identifiers: list[str] = Field(default_factory=list)
    quasi: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="A numeric column's [low, high]: what a noisy sum clamps it to."
    )
    schedule: str = Field("", max_length=64)


class GrantIn(BaseModel):
    """The conditions an owner grants a dataset under."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(min_length=1)
    k: int = Field(10, ge=2, le=100_000, description="The fewest rows an aggregate may describe.")
    rows: bool = Field(False, description="Whether row-level results may leave.")
    jobs: bool = Field(
        False,
        description="Whether the grantee's compute jobs may read the granted columns inside a pool; what "
        "they write leaves only when the owner releases it.",
    )
    epsilon: float | None = Field(None, gt=0, le=100, description="The privacy budget; None: no noise.")
    query_budget: int = Field(1000, ge=1, le=1_000_000)
    expires: dt.datetime | None = None
    purpose: str = Field("", max_length=2000)


class SandboxRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    org: str | None = Field(None, description="The requesting organization (admin API); a key's own on /v1.")
    purpose: str = Field(min_length=1, max_length=2000)
    until: dt.datetime | None = None


class SandboxQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    org: str | None = Field(None, description="The querying organization (admin API); a key's own on /v1.")
    sql: str = Field(min_length=1, max_length=20_000)
    epsilon: float | None = Field(None, gt=0, le=100, description="ε this query spends (default 0.1).")


@dataclass(frozen=True)
class Grantee:
    """Who acts: an organization's id and the actor's name for the trail."""

    org_id: str
    actor: str


def _columns(row: SandboxDataset) -> list[Column]:
    return [
        Column(c["name"], c["type"], c["sensitivity"], tuple(c["bounds"]) if c.get("bounds") else None)
        for c in row.columns
    ]


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


class Sandbox:
    """The data sandbox over *db* (its records) and *store* (the datasets' rows)."""

    def __init__(self, db: Database, store: Store) -> None:
        self.db = db
        self.store = store

    @classmethod
    def at(
        cls,
        db: Database,
        data_dir: Path,
        limits: QueryLimits | None = None,
        store: Literal["auto", "duckdb", "postgres"] = "auto",
    ) -> Sandbox:
        """The sandbox of *db*, its rows in DuckDB files under *data_dir* or in *db* itself
        (``postgres``; ``auto``: where *db* is PostgreSQL)."""
        if store == "postgres" or (store == "auto" and not db.is_sqlite):
            from dizuo.sandbox.pgstore import PostgresStore

            return cls(db, PostgresStore(db, limits))
        return cls(db, SandboxStore(Path(data_dir) / "sandbox", limits))

    # ---- datasets --------------------------------------------------------------------------

    def add_dataset(self, owner_org_id: str, spec: DatasetIn | dict[str, Any], source: Path, file_name: str, actor: str) -> dict[str, Any]:  # fmt: skip
        """Register a dataset (or load new rows into one the owner registered before: the file must
        have the registered columns) from *source*; its catalog entry."""
        spec = validated(DatasetIn, spec, "dataset")
        if spec.classification == "core":
            raise InvalidRequest("sandbox_core_data", param="classification")
        if not NAME.match(spec.name):
            raise invalid_param("name", "须以字母、汉字或下划线开头，只含字母、数字、汉字和下划线（作 SQL 表名）", "must start with a letter, a Chinese character or _, and hold only those and digits (it is the SQL table name)")  # fmt: skip
        with self.db.session() as session:
            existing = session.scalars(select(SandboxDataset).where(SandboxDataset.name == spec.name)).first()
            if existing is not None and existing.owner_org_id != owner_org_id:
                raise SandboxTaken(name=spec.name)
        version = existing.version + 1 if existing is not None else 1
        old_file = existing.store_file if existing is not None else ""
        dataset_id = existing.id if existing is not None else f"sds_{secrets.token_hex(8)}"
        try:
            loaded = self.store.load(spec.name, source, file_name, f"{dataset_id}-v{version}")
        except StoreError as exc:
            raise invalid_param("file", exc.zh, exc.en) from None
        try:
            columns = self._described(spec, loaded.columns, existing)
            self._no_hidden_identifiers(loaded.file, spec.name, columns)
        except Exception:
            self.store.drop(loaded.file)
            raise
        now = utcnow()
        with self.db.session() as session:
            if existing is None:
                row: SandboxDataset | None = SandboxDataset(
                    id=dataset_id,
                    name=spec.name,
                    owner_org_id=owner_org_id,
                    created_at=now,
                )
                session.add(row)
            else:
                row = session.get(SandboxDataset, dataset_id)
            assert row is not None
            row.description = spec.description or (existing.description if existing else "")
            row.classification = spec.classification
            row.personal = spec.personal
            row.columns = columns
            row.row_count = loaded.rows
            row.schedule = spec.schedule or (existing.schedule if existing else "")
            row.store_file = loaded.file
            row.version = version
            row.updated_at = now
            session.flush()
            append(
                session,
                "sandbox.dataset.load" if existing else "sandbox.dataset.add",
                dataset_id,
                actor=actor,
                org_id=owner_org_id,
                detail={
                    "name": spec.name,
                    "version": version,
                    "rows": loaded.rows,
                    "classification": spec.classification,
                },
            )
            view = self._dataset_view(session, row)
        if existing is not None:
            self.store.drop(old_file)
        return view

    def _described(
        self, spec: DatasetIn, found: list[tuple[str, str]], existing: SandboxDataset | None
    ) -> list[dict[str, Any]]:
        """The dataset's columns from the file, each with its sensitivity; a file that does not
        match what was registered (names, order, types) is refused naming the first column that differs."""
        names = [name for name, _ in found]
        for option, listed in (("identifiers", spec.identifiers), ("quasi", spec.quasi), ("sensitive", spec.sensitive), ("bounds", list(spec.bounds))):  # fmt: skip
            for name in listed:
                if name not in names:
                    raise InvalidRequest(
                        "sandbox_schema_mismatch",
                        param=option,
                        where_zh="",
                        where_en="",
                        reason_zh=f"--{option} 里的列 {name} 不在文件中（文件的列：{'、'.join(names)}）",
                        reason_en=f"--{option} names {name}, which the file does not have (its columns: {', '.join(names)})",
                    )
        if existing is not None:
            before = [(c["name"], c["type"]) for c in existing.columns]
            width = max(len(before), len(found))
            for position in range(width):
                was = before[position] if position < len(before) else None
                now = found[position] if position < len(found) else None
                if was == now:
                    continue
                if was is None or now is None or was[0] != now[0] or not _compatible(was[1], now[1]):
                    want = f"{was[0]} {was[1]}" if was else "无 / nothing"
                    got = f"{now[0]} {now[1]}" if now else "无 / nothing"
                    raise InvalidRequest(
                        "sandbox_schema_mismatch",
                        param="file",
                        where_zh=f"（第 {position + 1} 列）",
                        where_en=f" (column {position + 1})",
                        reason_zh=f"登记的是 {want}，文件里是 {got}",
                        reason_en=f"registered {want}, the file has {got}",
                    )
            kept = {c["name"]: c for c in existing.columns}
        else:
            kept = {}
        columns = []
        for name, kind in found:
            sensitivity = (
                "identifier" if name in spec.identifiers
                else "quasi" if name in spec.quasi
                else "sensitive" if name in spec.sensitive
                else kept[name]["sensitivity"] if name in kept and not (spec.identifiers or spec.quasi or spec.sensitive)
                else "public"
            )  # fmt: skip
            bounds = spec.bounds.get(name) or (kept.get(name) or {}).get("bounds")
            if bounds is not None and bounds[0] > bounds[1]:
                raise invalid_param(f"bounds.{name}", "下界大于上界", "the low bound is above the high one")
            columns.append({"name": name, "type": kind, "sensitivity": sensitivity, "bounds": list(bounds) if bounds else None})  # fmt: skip
        return columns

    def _no_hidden_identifiers(self, file: str, table: str, columns: list[dict[str, Any]]) -> None:
        """Refuse a text column whose values the guard finds to be IDs, phones, cards … (most of a
        sample) unless it is registered as an identifier."""
        for column in columns:
            if column["sensitivity"] == "identifier" or not column["type"].startswith(TEXTUAL):
                continue
            values = self.store.sample(file, table, column["name"], SAMPLE)
            if not values:
                continue
            kinds: dict[str, int] = {}
            for value in values:
                found = scan(value)
                if len(found) == 1 and found[0].value == value.strip() and found[0].type in LOOKS_LIKE:
                    kinds[found[0].type] = kinds.get(found[0].type, 0) + 1
            for kind, count in kinds.items():
                if count * 2 > len(values):
                    zh, en = LOOKS_LIKE[kind]
                    raise InvalidRequest(
                        "sandbox_undeclared_identifier",
                        param="identifiers",
                        column=column["name"],
                        kind_zh=zh,
                        kind_en=en,
                        share=f"{count}/{len(values)}",
                    )

    def datasets(self) -> list[dict[str, Any]]:
        """The catalog: every dataset's description, classification, schema and owner (never rows)."""
        with self.db.session() as session:
            rows = session.scalars(select(SandboxDataset).order_by(SandboxDataset.created_at)).all()
            return [self._dataset_view(session, row) for row in rows]

    def dataset(self, name: str) -> dict[str, Any]:
        with self.db.session() as session:
            return self._dataset_view(session, self._dataset(session, name))

    def _dataset(self, session: Any, name: str) -> SandboxDataset:
        row: SandboxDataset | None = session.scalars(
            select(SandboxDataset).where(SandboxDataset.name == name)
        ).first()
        if row is None:
            raise SandboxNotFound(name=name)
        return row

    def _dataset_view(self, session: Any, row: SandboxDataset) -> dict[str, Any]:
        owner = session.get(Organization, row.owner_org_id)
        return {
            "id": row.id,
            "name": row.name,
            "owner": owner.name if owner else row.owner_org_id,
            "description": row.description,
            "classification": row.classification,
            "personal": row.personal,
            "columns": [
                {
                    "name": c["name"],
                    "type": c["type"],
                    "sensitivity": c["sensitivity"],
                    "bounds": c.get("bounds"),
                }
                for c in row.columns
            ],
            "rows": row.row_count,
            "schedule": row.schedule,
            "version": row.version,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }

    def owner_of(self, name: str) -> str:
        """The owner organization's id of the dataset *name*."""
        with self.db.session() as session:
            return self._dataset(session, name).owner_org_id

    # ---- requests and grants ---------------------------------------------------------------

    def request(
        self, name: str, who: Grantee, purpose: str, until: dt.datetime | None = None
    ) -> dict[str, Any]:
        """An organization asks to use the dataset *name* for *purpose* (until *until*)."""
        purpose = purpose.strip()
        if len(purpose) < 4:
            raise invalid_param(
                "purpose", "请写明用途（至少 4 个字）", "state the purpose (4 characters at least)"
            )
        with self.db.session() as session:
            dataset = self._dataset(session, name)
            row = SandboxRequest(
                id=f"sdr_{secrets.token_hex(8)}",
                dataset_id=dataset.id,
                org_id=who.org_id,
                purpose=purpose,
                until=until,
                status="pending",
                actor=who.actor,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            append(session, "sandbox.request", row.id, actor=who.actor, org_id=who.org_id, detail={"dataset": name, "purpose": purpose})  # fmt: skip
            return self._request_view(session, row)

    def requests(self, org_id: str | None = None, owner_org_id: str | None = None) -> list[dict[str, Any]]:
        """Requests, newest first: an organization's own (*org_id*), those for an owner's datasets
        (*owner_org_id*), or all (neither)."""
        with self.db.session() as session:
            query = select(SandboxRequest).order_by(SandboxRequest.created_at.desc())
            query = _seen(query, SandboxRequest, org_id, owner_org_id)
            return [self._request_view(session, row) for row in session.scalars(query)]

    def _request_view(self, session: Any, row: SandboxRequest) -> dict[str, Any]:
        return {
            **_named(session, row),
            "until": iso(row.until) if row.until else None,
            "status": row.status,
            "actor": row.actor,
            "created_at": iso(row.created_at),
        }

    def grant(
        self, name: str, org_id: str, conditions: GrantIn | dict[str, Any], by: Grantee
    ) -> dict[str, Any]:
        """The owner (*by*; a platform admin acts for any owner: ``by.org_id`` empty) grants the
        dataset *name* to *org_id* under *conditions*; a pending request of that organization for it
        is marked granted."""
        conditions = validated(GrantIn, conditions, "grant")
        with self.db.session() as session:
            dataset = self._dataset(session, name)
            if by.org_id and dataset.owner_org_id != by.org_id:
                raise SandboxNotFound(name=name)
            known = {c["name"]: c for c in dataset.columns}
            for column in conditions.columns:
                if column not in known:
                    raise invalid_param(
                        "columns",
                        f"数据集 {name} 没有列 {column}",
                        f"the dataset {name} has no column {column}",
                    )
                if known[column]["sensitivity"] == "identifier":
                    raise invalid_param("columns", f"列 {column} 是标识符，不能授权", f"column {column} is an identifier and cannot be granted")  # fmt: skip
            if conditions.rows and conditions.epsilon is not None:
                raise invalid_param(
                    "rows",
                    "有隐私预算的授权不能放行逐行结果",
                    "a grant with a privacy budget cannot let rows leave",
                )
            now = utcnow()
            if conditions.expires is not None and utc(conditions.expires) <= now:
                raise invalid_param("expires", "到期时间须在将来", "the expiry must be in the future")
            pending = session.scalars(
                select(SandboxRequest).where(
                    SandboxRequest.dataset_id == dataset.id,
                    SandboxRequest.org_id == org_id,
                    SandboxRequest.status == "pending",
                )
            ).all()
            row = SandboxGrant(
                id=f"sdg_{secrets.token_hex(8)}",
                dataset_id=dataset.id,
                org_id=org_id,
                request_id=pending[0].id if pending else None,
                purpose=conditions.purpose or (pending[0].purpose if pending else ""),
                allowed_columns=list(dict.fromkeys(conditions.columns)),
                min_group=conditions.k,
                rows_allowed=conditions.rows,
                jobs_allowed=conditions.jobs,
                epsilon=conditions.epsilon,
                epsilon_spent=0.0,
                query_budget=conditions.query_budget,
                queries_used=0,
                expires_at=utc(conditions.expires) if conditions.expires else None,
                actor=by.actor,
                created_at=now,
            )
            session.add(row)
            for request in pending:
                request.status = "granted"
            session.flush()
            detail = {"dataset": name, "columns": row.allowed_columns, "k": row.min_group, "rows": row.rows_allowed, "jobs": row.jobs_allowed, "epsilon": row.epsilon}  # fmt: skip
            append(session, "sandbox.grant", row.id, actor=by.actor, org_id=org_id, detail=detail)
            return self._grant_view(session, row)

    def _pending(self, session: Any, request_id: str, by: Grantee) -> tuple[SandboxRequest, SandboxDataset]:
        """A request on one of *by*'s datasets (any, for a platform admin), still pending."""
        row = session.get(SandboxRequest, request_id)
        dataset = session.get(SandboxDataset, row.dataset_id) if row else None
        if row is None or dataset is None or (by.org_id and dataset.owner_org_id != by.org_id):
            raise SandboxNotFound("sandbox_request_not_found", id=request_id)
        if row.status != "pending":
            raise invalid_param("request", f"申请已{'批准' if row.status == 'granted' else '拒绝'}", f"the request was {row.status} already")  # fmt: skip
        return row, dataset

    def grant_request(
        self, request_id: str, conditions: GrantIn | dict[str, Any], by: Grantee
    ) -> dict[str, Any]:
        """The owner grants a pending request: its dataset to its organization, for its purpose."""
        with self.db.session() as session:
            row, dataset = self._pending(session, request_id, by)
            name, org_id = dataset.name, row.org_id
        return self.grant(name, org_id, conditions, by)

    def refuse(self, request_id: str, by: Grantee, reason: str) -> dict[str, Any]:
        """The owner refuses a pending request."""
        with self.db.session() as session:
            row, _ = self._pending(session, request_id, by)
            row.status = "refused"
            append(
                session,
                "sandbox.refuse",
                row.id,
                actor=by.actor,
                org_id=row.org_id,
                detail={"reason": reason},
            )
            return self._request_view(session, row)

    def revoke(self, grant_id: str, by: Grantee) -> dict[str, Any]:
        """The owner (or a platform admin) revokes a grant at once."""
        with self.db.session() as session:
            row = session.get(SandboxGrant, grant_id)
            dataset = session.get(SandboxDataset, row.dataset_id) if row else None
            if row is None or dataset is None or (by.org_id and dataset.owner_org_id != by.org_id):
                raise SandboxNotFound("sandbox_grant_not_found", id=grant_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                append(session, "sandbox.revoke", row.id, actor=by.actor, org_id=row.org_id, detail={"dataset": dataset.name})  # fmt: skip
            return self._grant_view(session, row)

    def grants(self, org_id: str | None = None, owner_org_id: str | None = None) -> list[dict[str, Any]]:
        """Grants, newest first: to *org_id* and of *owner_org_id*'s datasets, or all."""
        with self.db.session() as session:
            query = select(SandboxGrant).order_by(SandboxGrant.created_at.desc())
            query = _seen(query, SandboxGrant, org_id, owner_org_id)
            return [self._grant_view(session, row) for row in session.scalars(query)]

    def show_grant(self, grant_id: str, org_id: str | None = None) -> dict[str, Any]:
        """One grant, for its grantee, its dataset's owner, or anyone reading all (*org_id* None)."""
        with self.db.session() as session:
            row = session.get(SandboxGrant, grant_id)
            dataset = session.get(SandboxDataset, row.dataset_id) if row else None
            if row is None or dataset is None or (org_id is not None and org_id not in (row.org_id, dataset.owner_org_id)):  # fmt: skip
                raise SandboxNotFound("sandbox_grant_not_found", id=grant_id)
            return self._grant_view(session, row)

    def _grant_view(self, session: Any, row: SandboxGrant) -> dict[str, Any]:
        return {
            **_named(session, row),
            "columns": row.allowed_columns,
            "k": row.min_group,
            "rows": row.rows_allowed,
            "jobs": row.jobs_allowed,
            "epsilon": row.epsilon,
            "epsilon_spent": round(row.epsilon_spent, 6),
            "query_budget": row.query_budget,
            "queries_used": row.queries_used,
            "expires_at": iso(row.expires_at) if row.expires_at else None,
            "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
            "state": _state(row, utcnow()),
            "actor": row.actor,
            "created_at": iso(row.created_at),
        }

    # ---- queries ---------------------------------------------------------------------------

    def query(self, name: str, sql: str, who: Grantee, epsilon: float | None = None) -> dict[str, Any]:
        """Run *sql* on the dataset *name* for *who* under its grant: ``{"columns", "rows",
        "suppressed"}`` and what the query was (``id``, ``kind``, ``epsilon``, ``notes``)."""
        started = time.perf_counter()
        with self.db.session() as session:  # read only: the grant is charged with the answer
            dataset = self._dataset(session, name)
            grant = self._active_grant(session, dataset, who)
            columns, table, file = _columns(dataset), dataset.name, dataset.store_file
            k, allowed, rows_allowed = grant.min_group, list(grant.allowed_columns), grant.rows_allowed
            grant_id, dataset_id, budgeted = grant.id, dataset.id, grant.epsilon is not None
            spend = _affordable(grant, epsilon if budgeted else None)
            earlier = self._earlier(session, who.org_id, dataset_id)
        from dizuo.sandbox import disclosure
        from dizuo.sandbox.policy import plan

        record = _Record(grant_id, dataset_id, who, sql)
        by_name = {c.name: c for c in columns}
        try:
            planned = plan(
                sql, table, columns, allowed, rows_allowed, self.store.limits.max_rows, clamp=budgeted
            )
            if budgeted:
                disclosure.private_outputs(planned, by_name)
        except Refused as refused:
            self._finish(record.refused(refused.code, refused.en), started)
            raise SandboxRefused(refused) from None
        try:
            answer = self._run(planned, table, file, k, earlier, spend, by_name)
        except TooSlow:
            self._finish(
                record.refused("sandbox_query_timeout", f"past {self.store.limits.seconds} s"), started
            )
            raise InvalidRequest(
                "sandbox_query_timeout", param="sql", seconds=self.store.limits.seconds
            ) from None
        except QueryFailed as exc:
            self._finish(record.refused("sandbox_query_failed", exc.en), started)
            raise InvalidRequest(
                "sandbox_query_failed", param="sql", reason_zh=exc.zh, reason_en=exc.en
            ) from None
        record.released(planned, answer, spend)
        query_id = self._finish(record, started)
        return {"id": query_id, "object": "sandbox.query", "dataset": name, "kind": planned.kind, **answer, "epsilon": spend}  # fmt: skip

    def _active_grant(self, session: Any, dataset: SandboxDataset, who: Grantee) -> SandboxGrant:
        grants = session.scalars(
            select(SandboxGrant)
            .where(SandboxGrant.dataset_id == dataset.id, SandboxGrant.org_id == who.org_id)
            .order_by(SandboxGrant.created_at.desc())
        ).all()
        now = utcnow()
        for grant in grants:
            if _state(grant, now) == "active":
                return cast(SandboxGrant, grant)
        if not grants:
            raise SandboxForbidden(name=dataset.name)
        latest = grants[0]
        revoked = latest.revoked_at is not None
        at = latest.revoked_at if revoked else latest.expires_at
        raise SandboxForbidden(
            "sandbox_grant_inactive",
            id=latest.id,
            name=dataset.name,
            state_zh="撤销" if revoked else "过期",
            state_en="revoked" if revoked else "expired",
            at=iso(at) if at else "-",
        )

    @staticmethod
    def _earlier(session: Any, org_id: str, dataset_id: str) -> list[tuple[str, list[str]]]:
        """The filters and groups of the organization's earlier released aggregates on the dataset,
        on any grant (a new grant starts no new history), newest first."""
        from dizuo.sandbox.disclosure import HISTORY

        found = session.execute(
            select(SandboxQuery.filter_sql, SandboxQuery.group_by)
            .where(
                SandboxQuery.org_id == org_id,
                SandboxQuery.dataset_id == dataset_id,
                SandboxQuery.filter_sql.is_not(None),
            )
            .order_by(SandboxQuery.created_at.desc())
            .limit(HISTORY)
        ).all()
        return [(f or "TRUE", g or []) for f, g in found]

    def _run(
        self,
        planned: Plan,
        table: str,
        file: str,
        k: int,
        earlier: list[tuple[str, list[str]]],
        spend: float,
        columns: dict[str, Column],
    ) -> dict[str, Any]:
        """Run a checked plan; its answer after disclosure control (*earlier*: the filters and
        groups of the answers this one is compared with)."""
        from dizuo.sandbox import disclosure

        names, rows = self.store.run(file, planned.sql, None if planned.kind == "aggregate" else self.store.limits.max_rows + 1)  # fmt: skip
        visible = names[: planned.visible]
        if planned.kind == "rows":
            truncated = len(rows) > self.store.limits.max_rows
            kept = rows[: self.store.limits.max_rows]
            return {
                "columns": visible,
                "rows": [[_json(v) for v in row[: planned.visible]] for row in kept],
                "suppressed": 0,
                "truncated": truncated,
                "notes": [],
            }
        verdict = disclosure.Verdict.of(planned, rows, k)
        if planned.conjuncts:
            disclosure.filter_check(self.store, file, table, planned, k, verdict)
        disclosure.history_check(self.store, file, table, planned, k, verdict, earlier)
        released = verdict.released(planned, rows)
        notes = verdict.notes(k)
        if spend:
            released = disclosure.add_noise(planned, released, spend, columns)
            notes.append(disclosure.noise_note(spend))
        return {
            "columns": visible,
            "rows": [[_json(v) for v in row] for row in released],
            "suppressed": verdict.count,
            "notes": notes,
        }

    def _finish(self, record: _Record, started: float) -> str:
        """Write the query's record and its audit entry, and charge a released query to its grant
        (one transaction); its id. Charging is one conditional update: of two queries that both
        found budget left, the one the budget no longer covers is not released (403)."""
        record.row.ms = int((time.perf_counter() - started) * 1000)
        with self.db.session() as session:
            if record.row.decision == "released":
                spend = record.row.epsilon
                charged = session.execute(
                    update(SandboxGrant)
                    .where(
                        SandboxGrant.id == record.row.grant_id,
                        SandboxGrant.queries_used < SandboxGrant.query_budget,
                        (SandboxGrant.epsilon.is_(None))
                        | (SandboxGrant.epsilon_spent + spend <= SandboxGrant.epsilon + 1e-9),
                    )
                    .values(
                        queries_used=SandboxGrant.queries_used + 1,
                        epsilon_spent=SandboxGrant.epsilon_spent + spend,
                    )
                )
                if charged.rowcount != 1:  # type: ignore[attr-defined]
                    raise SandboxForbidden("sandbox_privacy_budget_spent" if spend else "sandbox_query_budget_spent", id=record.row.grant_id, asked=spend, left=0, used="-", budget="-")  # fmt: skip
            session.add(record.row)
            session.flush()
            detail = {
                "dataset": record.row.dataset_id,
                "grant": record.row.grant_id,
                "decision": record.row.decision,
                "reason": record.row.reason,
                "rows_out": record.row.rows_out,
                "suppressed": record.row.suppressed,
                "epsilon": record.row.epsilon,
                "sql": record.row.sql[:2000],
            }
            append(session, "sandbox.query", record.row.id, actor=record.row.actor, org_id=record.row.org_id, detail=detail)  # fmt: skip
            return record.row.id

    def queries(self, org_id: str | None = None, owner_org_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:  # fmt: skip
        """The query log, newest first: an organization's own, and those on an owner's datasets."""
        with self.db.session() as session:
            query = select(SandboxQuery).order_by(SandboxQuery.created_at.desc()).limit(limit)
            query = _seen(query, SandboxQuery, org_id, owner_org_id)
            names = dict(session.execute(select(SandboxDataset.id, SandboxDataset.name)).all())
            orgs = dict(session.execute(select(Organization.id, Organization.name)).all())
            return [
                {
                    "id": row.id,
                    "dataset": names.get(row.dataset_id or "", row.dataset_id),
                    "organization": orgs.get(row.org_id, row.org_id),
                    "grant": row.grant_id,
                    "actor": row.actor,
                    "sql": row.sql,
                    "decision": row.decision,
                    "reason": row.reason,
                    "detail": row.detail,
                    "kind": row.kind,
                    "rows_out": row.rows_out,
                    "suppressed": row.suppressed,
                    "epsilon": row.epsilon,
                    "ms": row.ms,
                    "created_at": iso(row.created_at),
                }
                for row in session.scalars(query)
            ]

    def close(self) -> None:
        self.store.close()


def _named(session: Any, row: SandboxRequest | SandboxGrant) -> dict[str, Any]:
    """What a request and a grant show first: its id, dataset, organization and purpose."""
    dataset = session.get(SandboxDataset, row.dataset_id)
    org = session.get(Organization, row.org_id)
    return {
        "id": row.id,
        "dataset": dataset.name if dataset else row.dataset_id,
        "organization": org.name if org else row.org_id,
        "purpose": row.purpose,
    }


def _seen(query: Any, model: Any, org_id: str | None, owner_org_id: str | None) -> Any:
    """*query* of requests, grants or queries narrowed to an organization's own (*org_id*) and those
    on the datasets it owns (*owner_org_id*); neither: all."""
    if org_id is not None and owner_org_id is not None:
        owned = select(SandboxDataset.id).where(SandboxDataset.owner_org_id == owner_org_id)
        return query.where((model.org_id == org_id) | model.dataset_id.in_(owned))
    if org_id is not None:
        return query.where(model.org_id == org_id)
    return query


def _affordable(grant: SandboxGrant, epsilon: float | None) -> float:
    """The ε a query spends on *grant* (0 without a privacy budget); 403 when its queries or its
    privacy budget are spent."""
    if grant.queries_used >= grant.query_budget:
        raise SandboxForbidden("sandbox_query_budget_spent", id=grant.id, used=grant.queries_used, budget=grant.query_budget)  # fmt: skip
    if grant.epsilon is None:
        return 0.0
    left = round(grant.epsilon - grant.epsilon_spent, 9)
    spend = epsilon if epsilon is not None else min(DEFAULT_EPSILON, left)
    if spend <= 0 or spend > left + 1e-9:
        raise SandboxForbidden("sandbox_privacy_budget_spent", id=grant.id, asked=spend, left=max(left, 0))
    return spend


def _state(grant: SandboxGrant, now: dt.datetime) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    if grant.expires_at is not None and utc(grant.expires_at) <= now:
        return "expired"
    return "active"


def _compatible(registered: str, found: str) -> bool:
    """Whether a column's type in a new load can stand for the registered one."""
    if registered == found:
        return True
    numeric = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT", "DECIMAL")
    return registered.startswith(numeric) and found.startswith(numeric)


class _Record:
    """The ``sandbox_queries`` row of one query, filled in as it is decided."""

    def __init__(self, grant_id: str, dataset_id: str, who: Grantee, sql: str) -> None:
        self.row = SandboxQuery(
            id=f"sdq_{secrets.token_hex(8)}",
            grant_id=grant_id,
            dataset_id=dataset_id,
            org_id=who.org_id,
            actor=who.actor,
            sql=sql,
            rows_out=0,
            suppressed=0,
            epsilon=0.0,
            created_at=utcnow(),
        )

    def refused(self, code: str, detail: str) -> _Record:
        self.row.decision, self.row.reason, self.row.detail = "refused", code, detail
        return self

    def released(self, planned: Plan, answer: dict[str, Any], spend: float) -> None:
        self.row.decision = "released"
        self.row.kind = planned.kind
        self.row.rows_out = len(answer["rows"])
        self.row.suppressed = answer["suppressed"]
        self.row.epsilon = spend
        if planned.kind == "aggregate" and answer["rows"]:  # an answer wholly withheld tells nothing
            from dizuo.sandbox.policy import condition_sql

            self.row.filter_sql = condition_sql(planned.where)
            self.row.group_by = planned.group_by
