"""Tables of organizations and API keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, iso, utc, utcnow

__all__ = ["AdminToken", "ApiKey", "ConsoleSession", "Member", "Organization"]


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # 统一社会信用代码, validated by its GB 32100 check character.
    uscc: Mapped[str | None] = mapped_column(String(18), unique=True)
    industry: Mapped[str | None] = mapped_column(String(128))
    district: Mapped[str | None] = mapped_column(String(128))
    # The region code its core data must stay in (matches deployments' region); None keeps it local.
    region: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[str | None] = mapped_column(String(16))  # small | medium | large
    data_class: Mapped[str] = mapped_column(String(16), default="general")
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    guard: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a GuardPolicy; None: the platform's
    # It offers generated content to the public (面向公众提供服务): its calls go to filed models only.
    serves_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How its answers are labeled as AI-generated (compliance.labels.Mode); None: the platform's way.
    label: Mapped[str | None] = mapped_column(String(16))
    # An operator allowed it to run its own code on the compute pools (script jobs); off by default.
    allow_scripts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    # Only the SHA-256 of the key is stored; the prefix lets people tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    models: Mapped[list[str] | None] = mapped_column(JSON)
    # What the key may reach (accounts.keys.SCOPES); None: everything, as keys made before scopes.
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    data_class: Mapped[str | None] = mapped_column(String(16))
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    guard: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a GuardPolicy; None: the organization's
    label: Mapped[str | None] = mapped_column(String(16))  # as Organization.label; None: the organization's
    # Made for a batch's worker (dizuo.batches): its calls are the batch's lines, at batch prices.
    batch_id: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Every change bumps updated_at so that each worker's key cache can reload only what changed.
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, prefix={self.prefix!r})"

    def as_dict(self) -> dict[str, Any]:
        """Return the key's public fields (never the hash)."""
        return {
            "id": self.id,
            "org_id": self.org_id,
            "name": self.name,
            "prefix": self.prefix,
            "models": self.models,
            "scopes": self.scopes,
            "data_class": self.data_class,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "concurrency": self.concurrency,
            "label": self.label,
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "created_at": iso(self.created_at),
            "state": self.state(),
        }

    def state(self) -> str:
        """``revoked``, ``expired`` or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        expires = self.expires_at
        if expires is not None and utc(expires) <= utcnow():
            return "expired"
        return "active"


class Member(Base):
    """A person who administers the platform: a role, and the organization or issuer it is bound to."""

    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    issuer: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AdminToken(Base):
    """A bearer token for the admin API, acting as one member."""

    __tablename__ = "admin_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # None: never


class ConsoleSession(Base):
    """A signed-in browser: the cookie holds a random token, this table its SHA-256."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # echoed by every form and HTMX request
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class AccountEvent(Base):
    """One change to a member's credentials or access, and who made it (the audit of the accounts)."""

    __tablename__ = "account_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # time-ordered (UUIDv7)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "cli" for the operator's shell
    action: Mapped[str] = mapped_column(String(32))
    member: Mapped[str] = mapped_column(String(64), index=True)  # the member acted on
    org_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the member's organization
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SignInThrottle(Base):
    """Failed sign-ins in a row for one username or one client address, and the lock they earned."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "user:…" or "addr:…"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
