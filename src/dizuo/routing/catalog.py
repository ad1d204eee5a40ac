"""The deployment catalog: the YAML file's deployments plus those operators add at run time.

Run-time deployments live in the database, validated by the same schema as the file
(:class:`dizuo.config.DeploymentConfig`); every worker checks for changes each refresh period and
swaps in a new router, keeping the health it has learned. A name in the file cannot be redefined
at run time: change the file for those.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from dizuo.config import DeploymentConfig, PlatformConfig
from dizuo.errors import InvalidRequest
from dizuo.routing.tables import DeploymentRow
from dizuo.store import Database, utcnow
from dizuo.store.audit import append

__all__ = ["Catalog"]


def _missing(name: str) -> InvalidRequest:
    return InvalidRequest(
        "invalid_param",
        param="name",
        reason_zh=f"没有运行时部署 {name}",
        reason_en=f"no run-time deployment {name}",
    )


def _validation_error(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    return InvalidRequest("invalid_param", param=param, reason_zh=first["msg"], reason_en=first["msg"])


class Catalog:
    def __init__(self, db: Database, config: PlatformConfig) -> None:
        self.db = db
        self.config = config
        self._file_names = {dep.name for dep in config.deployments}
        self._seen: tuple[Any, int] | None = None

    def _stamp(self) -> tuple[Any, int]:
        with self.db.session() as session:
            row = session.execute(select(func.max(DeploymentRow.updated_at), func.count())).one()
            return row[0], int(row[1])

    def changed(self) -> bool:
        """Return whether run-time deployments changed since the last :meth:`effective`."""
        return self._stamp() != self._seen

    def effective(self) -> PlatformConfig:
        """Return the file's config with the run-time deployments appended."""
        self._seen = self._stamp()
        extra = []
        with self.db.session() as session:
            for row in session.scalars(select(DeploymentRow).order_by(DeploymentRow.name)):
                try:
                    extra.append(DeploymentConfig.model_validate(row.spec))
                except ValidationError:  # written through add/update, so only a schema change gets here
                    continue
        return self.config.model_copy(update={"deployments": [*self.config.deployments, *extra]})

    def add(self, spec: dict[str, Any], actor: str = "cli") -> DeploymentConfig:
        """Validate and store a new run-time deployment (*actor*: who, for the audit trail)."""
        try:
            dep = DeploymentConfig.model_validate(spec)
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        if dep.name in self._file_names:
            raise InvalidRequest(
                "invalid_param",
                param="name",
                reason_zh=f"{dep.name} 由配置文件定义，请修改文件",
                reason_en=f"{dep.name} is defined in the config file; change it there",
            )
        now = utcnow()
        with self.db.session() as session:
            if session.get(DeploymentRow, dep.name) is not None:
                raise InvalidRequest(
                    "invalid_param",
                    param="name",
                    reason_zh=f"部署 {dep.name} 已存在",
                    reason_en=f"the deployment {dep.name} exists",
                )
            session.add(
                DeploymentRow(
                    name=dep.name,
                    spec=dep.model_dump(mode="json", exclude_none=True),
                    created_at=now,
                    updated_at=now,
                )
            )
            append(session, "deployment.add", dep.name, actor=actor, detail=_audited(dep))
        return dep

    def update(self, name: str, patch: dict[str, Any], actor: str = "cli") -> DeploymentConfig:
        """Change fields of a run-time deployment (the name stays)."""
        with self.db.session() as session:
            row = session.get(DeploymentRow, name)
            if row is None:
                raise _missing(name)
            try:
                dep = DeploymentConfig.model_validate({**row.spec, **patch, "name": name})
            except ValidationError as exc:
                raise _validation_error(exc) from exc
            row.spec = dep.model_dump(mode="json", exclude_none=True)
            row.updated_at = utcnow()
            append(session, "deployment.update", name, actor=actor, detail=_audited(dep, sorted(patch)))
        return dep

    def remove(self, name: str, actor: str = "cli") -> None:
        """Delete a run-time deployment; workers drop it within a refresh period."""
        with self.db.session() as session:
            row = session.get(DeploymentRow, name)
            if row is None:
                raise _missing(name)
            session.delete(row)
            append(session, "deployment.remove", name, actor=actor)


def _audited(dep: DeploymentConfig, changed: list[str] | None = None) -> dict[str, Any]:
    """What the audit trail keeps of a deployment: its spec without its upstream credential (and which
    fields a change named)."""
    spec = dep.model_dump(mode="json", exclude_none=True, exclude={"api_key"})
    return {"spec": spec, "changed": changed} if changed is not None else {"spec": spec}
