"""Creating organizations and keys: the operations the CLI and the admin API share."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.cn import uscc

from dizuo.accounts.keys import SCOPES, hash_key, new_key
from dizuo.accounts.members import Actor, who
from dizuo.accounts.permissions import sees_all_orgs
from dizuo.accounts.tables import ApiKey, Organization
from dizuo.config import DATA_CLASSES, MAX_LIMIT, GuardPolicy
from dizuo.errors import InvalidRequest, invalid_param
from dizuo.store import Database, utc, utcnow
from dizuo.store.audit import append

__all__ = [
    "CreatedKey",
    "change_org",
    "create_key",
    "create_org",
    "ensure_default_org",
    "find_org",
    "get_org",
    "key_owner",
    "list_keys",
    "org_by_name",
    "revoke_key",
    "set_guard_policy",
    "validate_uscc",
    "visible_orgs",
]

DEFAULT_ORG = "default"


@dataclass(frozen=True)
class CreatedKey:
    key: str  # shown once, never stored
    record: ApiKey


def _id() -> str:
    return uuid.uuid4().hex


def org_by_name(session: Session, name: str) -> Organization:
    """Return the organization *name* inside *session*, or raise a 400 that says how to create it."""
    org = session.scalars(select(Organization).where(Organization.name == name)).first()
    if org is None:
        raise invalid_param(
            "org",
            f"组织 {name} 不存在，请先用 `dizuo admin create-org {name}` 创建",
            f"no organization {name}; create it with `dizuo admin create-org {name}`",
        )
    return org


def get_org(db: Database, name: str) -> Organization:
    """Return the organization *name*, or raise a 400 that says how to create it."""
    with db.session() as session:
        return org_by_name(session, name)


def find_org(db: Database, name: str) -> Organization | None:
    """Return the organization called *name*, or None."""
    with db.session() as session:
        return session.scalars(select(Organization).where(Organization.name == name)).first()


SIZES = ("small", "medium", "large")


def validate_uscc(code: str) -> str:
    """Return the unified social credit code (统一社会信用代码) normalized, or raise 400."""
    normalized = code.strip().upper()
    if not uscc.is_valid(normalized):
        raise invalid_param(
            "uscc",
            f"{code!r} 不是有效的统一社会信用代码（18 位，校验位按 GB 32100 计算）",
            f"{code!r} is not a valid unified social credit code (18 characters, GB 32100 check character)",
        )
    return normalized


def create_org(
    db: Database,
    name: str,
    data_class: str = "general",
    *,
    uscc_code: str | None = None,
    industry: str | None = None,
    district: str | None = None,
    size: str | None = None,
    limits: tuple[int | None, int | None, int | None] = (None, None, None),
    region: str | None = None,
    serves_public: bool = False,
    by: Actor | None = None,
) -> Organization:
    """Create the organization *name*; a taken name or credit code, or a bad field, is a clear error."""
    name = name.strip()
    if not name or len(name) > 128:
        raise invalid_param(
            "name", "组织名称不能为空，最多 128 个字符", "the name must be 1 to 128 characters"
        )
    if data_class not in DATA_CLASSES:
        raise invalid_param(
            "data_class", "只能是 general、important 或 core", "must be general, important or core"
        )
    if size is not None and size not in SIZES:
        raise invalid_param("size", "只能是 small、medium 或 large", "must be small, medium or large")
    code = validate_uscc(uscc_code) if uscc_code else None
    rpm, tpm, concurrency = _limits(limits)
    with db.session() as session:
        if session.scalars(select(Organization).where(Organization.name == name)).first():
            raise invalid_param("name", f"组织 {name} 已存在", f"the organization {name} exists")
        if code and session.scalars(select(Organization).where(Organization.uscc == code)).first():
            raise invalid_param(
                "uscc", f"统一社会信用代码 {code} 已被其他组织使用", f"the credit code {code} is taken"
            )
        org = Organization(
            id=_id(),
            name=name,
            data_class=data_class,
            uscc=code,
            industry=industry,
            district=district,
            size=size,
            region=region,
            rpm=rpm,
            tpm=tpm,
            concurrency=concurrency,
            serves_public=serves_public,
        )
        session.add(org)
        detail = {"data_class": data_class, "uscc": code, "region": region, "serves_public": serves_public}
        append(session, "org.create", name, actor=who(by), org_id=org.id, detail=detail)
    return org


LABELS = ("explicit", "implicit")  # how an organization's or key's answers are labeled (compliance.labels)


def change_org(
    db: Database,
    name: str,
    *,
    serves_public: bool | None = None,
    label: str | None = None,
    allow_scripts: bool | None = None,
    by: Actor | None = None,
) -> Organization:
    """Change an organization: whether it offers generated content to the public (then its calls go
    to filed models only); how its answers are labeled as AI-generated (``explicit``: a visible
    notice in the text too; ``implicit``; ``default``: the platform's way). None leaves a field as
    it is; whether it may run its own code on the compute pools (script jobs). Every worker applies
    the change within a refresh period."""
    if label is not None and label not in (*LABELS, "default"):
        raise invalid_param(
            "label", "只能是 explicit、implicit 或 default", "must be explicit, implicit or default"
        )
    with db.session() as session:
        org = org_by_name(session, name)
        detail: dict[str, Any] = {}
        if serves_public is not None:
            org.serves_public = detail["serves_public"] = serves_public
        if label is not None:
            org.label = None if label == "default" else label
            detail["label"] = label
        if allow_scripts is not None:
            org.allow_scripts = detail["allow_scripts"] = allow_scripts
        _touch_keys(session, org.id, utcnow())  # they carry their organization's settings
        append(session, "org.update", org.name, actor=who(by), org_id=org.id, detail=detail)
    return org


def _touch_keys(session: Session, org_id: str, now: dt.datetime) -> None:
    """Mark the organization's keys changed, so that every worker reloads them (and what they carry
    of their organization) within a refresh period."""
    for record in session.scalars(select(ApiKey).where(ApiKey.org_id == org_id)):
        record.updated_at = now


def _limits(limits: tuple[int | None, int | None, int | None]) -> tuple[int | None, int | None, int | None]:
    for name, value in zip(("rpm", "tpm", "concurrency"), limits, strict=True):
        if value is not None and not 1 <= value <= MAX_LIMIT:
            raise invalid_param(
                name, f"必须是 1 到 {MAX_LIMIT:,} 的整数", f"must be a whole number from 1 to {MAX_LIMIT:,}"
            )
    return limits


def ensure_default_org(db: Database, with_key: bool = True) -> tuple[Organization, str | None]:
    """Create the ``default`` organization (and, with *with_key*, its first key) on first start.

    Return the organization and the new key (None when the organization already existed).
    """
    org = find_org(db, DEFAULT_ORG)
    if org is not None:
        return org, None
    org = create_org(db, DEFAULT_ORG)
    return org, create_key(db, org.name, name="first key").key if with_key else None


def usable_keys(db: Database, org_name: str) -> int:
    """How many of the organization's keys work now (neither revoked nor expired)."""
    now = utcnow()
    with db.session() as session:
        org = org_by_name(session, org_name)
        keys = session.scalars(select(ApiKey).where(ApiKey.org_id == org.id, ApiKey.revoked_at.is_(None)))
        return sum(1 for key in keys if key.expires_at is None or utc(key.expires_at) > now)


def create_key(
    db: Database,
    org_name: str,
    *,
    name: str | None = None,
    models: list[str] | None = None,
    data_class: str | None = None,
    expires_at: dt.datetime | None = None,
    limits: tuple[int | None, int | None, int | None] = (None, None, None),
    scopes: list[str] | None = None,
    label: str | None = None,
    by: Actor | None = None,
    batch_id: str | None = None,
) -> CreatedKey:
    """Create an API key for *org_name*; the plain key is returned once and never stored. *scopes*
    (:data:`~dizuo.accounts.keys.SCOPES`) limit what it reaches; None: everything."""
    org = get_org(db, org_name)
    if scopes is not None:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise invalid_param(
                "scopes",
                f"未知的权限 {', '.join(unknown) or '（空）'}；可用：{', '.join(SCOPES)}",
                f"unknown scopes {', '.join(unknown) or '(none)'}; known: {', '.join(SCOPES)}",
            )
        scopes = [scope for scope in SCOPES if scope in scopes]
    if data_class is not None and data_class not in DATA_CLASSES:
        raise invalid_param(
            "data_class", "只能是 general、important 或 core", "must be general, important or core"
        )
    if label is not None and label not in LABELS:
        raise invalid_param("label", "只能是 explicit 或 implicit", "must be explicit or implicit")
    if expires_at is not None and expires_at <= utcnow():
        raise invalid_param("expires", "过期时间必须在将来", "the expiry must be in the future")
    rpm, tpm, concurrency = _limits(limits)
    key = new_key()
    now = utcnow()
    record = ApiKey(
        id=_id(),
        org_id=org.id,
        name=name,
        prefix=key[:10],
        key_hash=hash_key(key),
        models=models,
        scopes=scopes,
        data_class=data_class,
        label=label,
        batch_id=batch_id,
        rpm=rpm,
        tpm=tpm,
        concurrency=concurrency,
        expires_at=utc(expires_at) if expires_at is not None else None,
        created_at=now,
        updated_at=now,
    )
    with db.session() as session:
        session.add(record)
        detail = {"name": name, "models": models, "scopes": scopes, "data_class": data_class, "label": label}
        append(session, "key.create", record.prefix, actor=who(by), org_id=org.id, detail=detail)
    return CreatedKey(key=key, record=record)


def revoke_key(db: Database, key_id_or_prefix: str, by: Actor | None = None) -> ApiKey:
    """Revoke a key by its id or visible prefix; every worker drops it within a refresh period."""
    with db.session() as session:
        record = _find_key(session, key_id_or_prefix)
        now = utcnow()
        record.revoked_at = now
        record.updated_at = now
        append(session, "key.revoke", record.prefix, actor=who(by), org_id=record.org_id)
    return record


def visible_orgs(db: Database, actor: Actor) -> list[dict[str, Any]]:
    """Return the organizations *actor* may see (all for platform admins and auditors, else its own),
    by name."""
    with db.session() as session:
        query = select(Organization).order_by(Organization.name)
        if not sees_all_orgs(actor):
            query = query.where(Organization.id == actor.org_id)
        return [
            {
                "id": o.id,
                "name": o.name,
                "uscc": o.uscc,
                "industry": o.industry,
                "district": o.district,
                "size": o.size,
                "data_class": o.data_class,
                "rpm": o.rpm,
                "tpm": o.tpm,
                "concurrency": o.concurrency,
                "serves_public": o.serves_public,
                "label": o.label,
            }
            for o in session.scalars(query)
        ]


def list_keys(db: Database, org_name: str) -> list[dict[str, Any]]:
    """Return the organization's keys, newest first, with their public fields (never a hash)."""
    with db.session() as session:
        org = org_by_name(session, org_name)
        query = select(ApiKey).where(ApiKey.org_id == org.id).order_by(ApiKey.created_at.desc())
        return [record.as_dict() for record in session.scalars(query)]


def key_owner(db: Database, key_id: str) -> Organization:
    """Return the organization that owns the key *key_id*, or raise 400."""
    with db.session() as session:
        record = _find_key(session, key_id)
        org = session.get(Organization, record.org_id)
        assert org is not None  # a foreign key
        return org


def _find_key(session: Session, key_id_or_prefix: str) -> ApiKey:
    record = session.scalars(
        select(ApiKey).where((ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix))
    ).first()
    if record is None:
        raise InvalidRequest("invalid_param", param="key", reason_zh="没有这个密钥", reason_en="no such key")
    return record


def set_guard_policy(
    db: Database,
    org_name: str,
    policy: dict[str, Any] | None,
    key: str | None = None,
    by: Actor | None = None,
) -> dict[str, Any] | None:
    """Set (or with None clear) the guard policy of an organization, or of one of its keys (by id or
    prefix). Validated by the config file's schema; every worker applies it within a refresh period.
    Return the stored policy with its defaults filled in."""
    stored = None
    if policy is not None:
        try:
            stored = GuardPolicy.model_validate(policy).model_dump()
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidRequest(
                "invalid_param", param="policy", reason_zh=reason, reason_en=reason
            ) from None
    with db.session() as session:
        org = org_by_name(session, org_name)
        now = utcnow()
        if key is not None:
            record = _find_key(session, key)
            if record.org_id != org.id:
                raise InvalidRequest(
                    "invalid_param",
                    param="key",
                    reason_zh="该密钥不属于此组织",
                    reason_en="the key is not this organization's",
                )
            record.guard = stored
            record.updated_at = now
        else:
            org.guard = stored
            _touch_keys(session, org.id, now)  # they carry their organization's policy
        target = f"{org.name} / {key}" if key is not None else org.name
        action = "guard.policy.set" if stored is not None else "guard.policy.clear"
        append(session, action, target, actor=who(by), org_id=org.id, detail=stored)
    return stored
