"""The pool catalog: the YAML file's pools plus those platform admins add or change at run time.

Run-time pools live in the database, validated by the same schema as the file
(:class:`dizuo.config.PoolConfig`): a mistake is a 400 naming the field, nothing stored. Every worker
looks for changes when it next places or lists (and the reconciler every round), so a pool added,
repriced or removed is in use within a moment everywhere. A name in the file cannot be redefined at
run time: change the file for those. A pool removed while jobs run on it: those not started are
placed again elsewhere; those running can no longer be followed and end unpaid (the docs say so).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from dizuo.compute.tables import PoolRow
from dizuo.config import PoolConfig
from dizuo.errors import InvalidRequest, invalid_param
from dizuo.store import Database, utcnow
from dizuo.store.audit import append

__all__ = ["PoolCatalog"]


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return invalid_param(param, first["msg"], first["msg"])


def _stored(pool: PoolConfig) -> dict[str, Any]:
    return pool.model_dump(mode="json", exclude_none=True)


def _audited(pool: PoolConfig, changed: list[str] | None = None) -> dict[str, Any]:
    """What the audit trail keeps of a pool: its fields without its cluster's token."""
    spec = pool.model_dump(mode="json", exclude_none=True, exclude={"token"})
    return {"spec": spec, "changed": changed} if changed is not None else {"spec": spec}


class PoolCatalog:
    def __init__(self, db: Database, file_pools: list[PoolConfig]) -> None:
        self.db = db
        self.file_pools = list(file_pools)
        self._file_names = {pool.name for pool in file_pools}

    def stamp(self) -> tuple[Any, int]:
        """What changes whenever a run-time pool is added, changed or removed (one small query)."""
        with self.db.session() as session:
            row = session.execute(select(func.max(PoolRow.updated_at), func.count())).one()
            return row[0], int(row[1])

    def effective(self) -> list[PoolConfig]:
        """The file's pools, then the run-time ones by name."""
        extra = []
        with self.db.session() as session:
            for row in session.scalars(select(PoolRow).order_by(PoolRow.name)):
                try:
                    extra.append(PoolConfig.model_validate(row.spec))
                except ValidationError:  # written through add/update: only a schema change gets here
                    continue
        return [*self.file_pools, *extra]

    def run_time(self, name: str) -> bool:
        return name not in self._file_names

    def add(self, spec: dict[str, Any], actor: str = "cli") -> PoolConfig:
        """Validate and store a new run-time pool (*actor*: who, for the audit trail)."""
        try:
            pool = PoolConfig.model_validate(spec)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        if pool.name in self._file_names:
            raise invalid_param(
                "name",
                f"{pool.name} 由配置文件定义，请修改文件",
                f"{pool.name} is defined in the config file; change it there",
            )
        now = utcnow()
        with self.db.session() as session:
            if session.get(PoolRow, pool.name) is not None:
                raise invalid_param("name", f"资源池 {pool.name} 已存在", f"the pool {pool.name} exists")
            session.add(PoolRow(name=pool.name, spec=_stored(pool), created_at=now, updated_at=now))
            append(session, "pool.add", pool.name, actor=actor, detail=_audited(pool))
        return pool

    def update(self, name: str, patch: dict[str, Any], actor: str = "cli") -> PoolConfig:
        """Change fields of a run-time pool (its name stays): prices, clearance, limits, address."""
        with self.db.session() as session:
            row = session.get(PoolRow, name)
            if row is None:
                raise self._missing(name)
            try:
                pool = PoolConfig.model_validate({**row.spec, **patch, "name": name})
            except ValidationError as exc:
                raise _invalid(exc) from exc
            row.spec = _stored(pool)
            row.updated_at = utcnow()
            append(session, "pool.update", name, actor=actor, detail=_audited(pool, sorted(patch)))
        return pool

    def remove(self, name: str, actor: str = "cli") -> None:
        """Delete a run-time pool; workers stop placing jobs on it within a moment."""
        with self.db.session() as session:
            row = session.get(PoolRow, name)
            if row is None:
                raise self._missing(name)
            session.delete(row)
            append(session, "pool.remove", name, actor=actor)

    def _missing(self, name: str) -> InvalidRequest:
        if name in self._file_names:
            return invalid_param(
                "name",
                f"{name} 由配置文件定义，请修改文件",
                f"{name} is defined in the config file; change it there",
            )
        return invalid_param("name", f"没有运行时资源池 {name}", f"no run-time pool {name}")
