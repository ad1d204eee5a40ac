"""Creating organizations and keys: the operations the CLI and the admin API share."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from dizuo.accounts.keys import hash_key, new_key
from dizuo.accounts.tables import ApiKey, Organization
from dizuo.errors import InvalidRequest
from dizuo.store import Database, utcnow

__all__ = ["CreatedKey", "create_key", "create_org", "ensure_default_org", "find_org", "revoke_key"]

DEFAULT_ORG = "default"


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once, never stored
    record: ApiKey


def _id() -> str:
    return uuid.uuid4().hex


def find_org(db: Database, name: str) -> Organization | None:
    """Return the organization called *name*, or None."""
    with db.session() as session:
        return session.scalars(select(Organization).where(Organization.name == name)).first()


def create_org(db: Database, name: str, data_class: str = "general") -> Organization:
    """Create the organization *name*; an existing name is a clear error."""
    with db.session() as session:
        if session.scalars(select(Organization).where(Organization.name == name)).first():
            raise InvalidRequest(
                "invalid_param", param="name", reason_zh=f"组织 {name} 已存在", reason_en=f"{name} exists"
            )
        org = Organization(id=_id(), name=name, data_class=data_class)
        session.add(org)
    return org


def ensure_default_org(db: Database, with_key: bool = True) -> tuple[Organization, str | None]:
    """Create the ``default`` organization (and, with *with_key*, its first key) on first start.

    Return the organization and the new key (None when the organization already existed).
    """
    org = find_org(db, DEFAULT_ORG)
    if org is not None:
        return org, None
    org = create_org(db, DEFAULT_ORG)
    return org, create_key(db, org.name, name="first key").key if with_key else None


def create_key(
    db: Database,
    org_name: str,
    *,
    name: str | None = None,
    models: list[str] | None = None,
    data_class: str | None = None,
    expires_at: dt.datetime | None = None,
) -> CreatedKey:
    """Create an API key for *org_name*; the plain key is returned once and never stored."""
    org = find_org(db, org_name)
    if org is None:
        raise InvalidRequest(
            "invalid_param",
            param="org",
            reason_zh=f"组织 {org_name} 不存在，请先用 `dizuo admin create-org {org_name}` 创建",
            reason_en=f"no organization {org_name}; create it with `dizuo admin create-org {org_name}`",
        )
    key = new_key()
    now = utcnow()
    record = ApiKey(
        id=_id(),
        org_id=org.id,
        name=name,
        prefix=key[:10],
        key_hash=hash_key(key),
        models=models,
        data_class=data_class,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )
    with db.session() as session:
        session.add(record)
    return CreatedKey(key=key, record=record)


def revoke_key(db: Database, key_id_or_prefix: str) -> ApiKey:
    """Revoke a key by its id or visible prefix; every worker drops it within a refresh period."""
    with db.session() as session:
        record = session.scalars(
            select(ApiKey).where((ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix))
        ).first()
        if record is None:
            raise InvalidRequest(
                "invalid_param", param="key", reason_zh="没有这个密钥", reason_en="no such key"
            )
        now = utcnow()
        record.revoked_at = now
        record.updated_at = now
    return record
