"""Members (people with a role) and their admin API tokens.

Roles: ``platform-admin`` (everything), ``org-admin`` (one organization: keys, wallet, usage),
``org-developer`` (one organization: its keys and usage), ``voucher-issuer`` (one issuer: grants and
revokes its vouchers, reads its report), ``auditor`` (reads everything, changes nothing).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dizuo.accounts.events import record
from dizuo.accounts.keys import hash_key
from dizuo.accounts.tables import AdminToken, Member, Organization
from dizuo.errors import PermissionDenied, invalid_param
from dizuo.store import Database, utc, utcnow
from dizuo.store.audit import append

__all__ = [
    "PASSWORD_HASHER",
    "ROLES",
    "Actor",
    "authenticate_token",
    "create_member",
    "create_token",
    "hash_password",
    "may_manage",
    "member_named",
    "valid_password",
    "verify_password",
    "who",
]

ROLES = (
    "platform-admin",
    "org-admin",
    "org-developer",
    "supplier",
    "voucher-issuer",
    "auditor",
    "program-office",
    "reviewer",
)
# Roles bound to one organization: a supplier manages its organization's catalog entry and applications.
ORG_ROLES = ("org-admin", "org-developer", "supplier")
TOKEN_PREFIX = "dzt-"
# argon2id at the library's RFC 9106 low-memory profile: 64 MiB, 3 passes, 4 lanes (about 0.1 s of
# CPU a hash here). A stored hash carries its own parameters: verifying reads them from it.
PASSWORD_HASHER = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as the admin API and the console see them."""

    member_id: str
    username: str
    role: str
    org_id: str | None
    issuer: str | None


def who(by: Actor | None) -> str:
    """The name the audit trail gives *by*: a member's username, or ``cli`` for the operator's shell."""
    return by.username if by is not None else "cli"


def create_member(
    db: Database,
    username: str,
    password: str,
    role: str,
    *,
    org: str | None = None,
    issuer: str | None = None,
    by: Actor | None = None,
) -> Member:
    """Create a member; organization roles need *org*, the issuer role needs *issuer*."""
    if role not in ROLES:
        raise invalid_param(
            "role", f"角色只能是 {'、'.join(ROLES)}", f"the role must be one of {', '.join(ROLES)}"
        )
    if not username.strip() or len(username) > 64:
        raise invalid_param(
            "username", "用户名不能为空，最多 64 个字符", "the username must be 1 to 64 characters"
        )
    valid_password(password)
    if role in ORG_ROLES and not org:
        raise invalid_param("org", f"角色 {role} 需要指定组织", f"the role {role} needs an organization")
    if role == "voucher-issuer" and not issuer:
        raise invalid_param(
            "issuer", "发券方角色需要指定发放方名称", "the voucher-issuer role needs an issuer name"
        )
    with db.session() as session:
        if session.scalars(select(Member).where(Member.username == username)).first():
            raise invalid_param("username", f"用户名 {username} 已存在", f"the username {username} is taken")
        org_id = None
        if org:
            found = session.scalars(select(Organization).where(Organization.name == org)).first()
            if found is None:
                raise invalid_param("org", f"组织 {org} 不存在", f"no organization {org}")
            org_id = found.id
        member = Member(
            id=uuid.uuid4().hex,
            username=username,
            password_hash=hash_password(password),
            role=role,
            org_id=org_id if role in ORG_ROLES else None,
            issuer=issuer if role == "voucher-issuer" else None,
            created_at=utcnow(),
        )
        session.add(member)
        detail = {"role": role, "issuer": member.issuer}
        append(session, "member.create", username, actor=who(by), org_id=member.org_id, detail=detail)
    return member


def valid_password(password: str) -> None:
    """Raise 400 unless *password* is one a member may have (8 to 1,024 characters)."""
    if not 8 <= len(password) <= 1024:
        raise invalid_param(
            "password", "密码应为 8 到 1024 个字符", "the password must have 8 to 1,024 characters"
        )


def hash_password(password: str) -> str:
    """The argon2id hash of *password*, as stored."""
    return PASSWORD_HASHER.hash(password)


def verify_password(db: Database, username: str, password: str) -> Actor | None:
    """Return the member when the password is right, else None."""
    with db.session() as session:
        member = session.scalars(select(Member).where(Member.username == username)).first()
        if member is None or member.disabled_at is not None:
            PASSWORD_HASHER.hash(password)  # spend the same time either way
            return None
        try:
            PASSWORD_HASHER.verify(member.password_hash, password)
        except VerificationError:
            return None
        return Actor(member.id, member.username, member.role, member.org_id, member.issuer)


def member_named(session: Session, username: str) -> Member:
    """The member *username*, or 400 naming it."""
    member = session.scalars(select(Member).where(Member.username == username)).first()
    if member is None:
        raise invalid_param("username", f"没有用户 {username}", f"no member {username}")
    return member


def may_manage(by: Actor | None, member: Member, action: str) -> None:
    """Raise 403 unless *by* may take *action* on *member*'s credentials: a platform admin on anyone,
    an organization admin on its own organization's members, every member on itself (but enabling
    itself); *by* None is the operator's shell, which holds the database and may do anything."""
    if by is None or by.role == "platform-admin":
        return
    if by.member_id == member.id and action != "enable":
        return
    if by.role == "org-admin" and member.role in ORG_ROLES and member.org_id == by.org_id:
        return
    raise PermissionDenied(role=by.role, action=f"{action} {member.username}")


def create_token(
    db: Database, username: str, expires_at: dt.datetime | None = None, by: Actor | None = None
) -> str:
    """Create an admin API token acting as *username*, valid until *expires_at* (None: until revoked);
    returned once, stored hashed. Only the member itself, its organization's admin or a platform
    admin (*by*; None is the operator's shell) may create one."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        member = member_named(session, username)
        may_manage(by, member, "create-token")
        session.add(
            AdminToken(
                id=uuid.uuid4().hex,
                member_id=member.id,
                prefix=token[:10],
                token_hash=hash_key(token),
                created_at=utcnow(),
                expires_at=expires_at,
            )
        )
        detail = {"token": token[:10], "expires_at": expires_at.isoformat() if expires_at else None}
        record(session, by, "create-token", member, detail)
    return token


def authenticate_token(db: Database, token: str) -> Actor | None:
    """Return the member behind an admin token, or None (unknown, revoked, expired, member disabled)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with db.session() as session:
        row = session.execute(
            select(AdminToken, Member)
            .join(Member, AdminToken.member_id == Member.id)
            .where(AdminToken.token_hash == hash_key(token))
        ).first()
        if row is None:
            return None
        admin_token, member = row
        if admin_token.revoked_at is not None or member.disabled_at is not None:
            return None
        if admin_token.expires_at is not None and utc(admin_token.expires_at) <= utcnow():
            return None
        return Actor(member.id, member.username, member.role, member.org_id, member.issuer)
